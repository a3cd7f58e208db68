"""How a corpus is indexed: the kind of index, and choosing one by a memory budget.

``auto`` picks the cheapest kind whose estimated resident memory fits the budget, in this
order: exact (IVF-Flat from ``approx_threshold`` vectors) while 4 bytes per dimension fit;
else IVF-SQ8 (1 byte per dimension); else IVF-PQ (dim/8 bytes); else the on-disk index,
which keeps only centroids, ids and a bitmap in memory. Without a budget ``auto`` is exact
below ``approx_threshold`` vectors and IVF-Flat from there, as before budgets existed;
below 1,000 vectors it is always exact.
"""

from __future__ import annotations

import json
import re
from dataclasses import asdict, dataclass, fields
from pathlib import Path

from index.atomic import atomic_write_bytes
from index.errors import CorruptFileError
from index.vectors import EXACT, IVF, IVF_MIN_VECTORS, IVFPQ, KINDS, ONDISK, SQ8

AUTO = "auto"
_UNITS = {
    "": 1,
    "b": 1,
    "k": 10**3,
    "kb": 10**3,
    "m": 10**6,
    "mb": 10**6,
    "g": 10**9,
    "gb": 10**9,
    "t": 10**12,
    "tb": 10**12,
    "kib": 2**10,
    "mib": 2**20,
    "gib": 2**30,
    "tib": 2**40,
}


def parse_bytes(text: str) -> int:
    """``"2GB"`` -> 2_000_000_000; also KiB/MiB/GiB, plain numbers and ``"0"`` (no limit).

    Raises:
        ValueError: not a size.
    """
    match = re.fullmatch(r"\s*([0-9]*\.?[0-9]+)\s*([a-zA-Z]*)\s*", str(text))
    unit = match.group(2).lower() if match else ""
    if not match or unit not in _UNITS:
        raise ValueError(f"{text!r} is not a size; write e.g. 512MB, 2GB or 1.5GiB")
    return int(float(match.group(1)) * _UNITS[unit])


def format_bytes(size: float) -> str:
    """``1536000`` -> ``"1.5 MB"`` (decimal units, as :func:`parse_bytes` reads them)."""
    for unit in ("B", "KB", "MB", "GB"):
        if abs(size) < 1000:
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1000
    return f"{size:.1f} TB"


def estimate_bytes(kind: str, count: int, dim: int) -> int:
    """Estimated resident memory of an index of ``kind`` over ``count`` vectors of width ``dim``.

    Counts vectors or codes, ids and centroids; memory-mapped files (the float vectors
    compressed kinds rerank with, the on-disk rows) are page cache the OS can drop, so
    they are not counted.
    """
    from index.kinds.compressed import code_bytes
    from index.kinds.ivf import ivf_lists

    centroids = 4 * dim * ivf_lists(count)
    if kind == EXACT:
        return count * (4 * dim + 8)
    if kind == IVF:
        return count * (4 * dim + 16) + centroids
    if kind in (SQ8, IVFPQ):  # codes + faiss's ids + ours + the sorted ids of the float rows
        codebooks = 256 * dim * 4 if kind == IVFPQ else 0
        return count * (code_bytes(kind, dim) + 24) + centroids + codebooks
    if kind == ONDISK:  # sorted ids + dead-row bitmap (with room for moved lists)
        return count * 8 + count // 4 + centroids
    raise ValueError(f"unknown index kind {kind!r}")


@dataclass(frozen=True)
class IndexConfig:
    """How vectors are indexed."""

    kind: str = AUTO  # "auto", "exact", "ivf", "sq8", "ivfpq" or "ondisk" (see the module docstring)
    approx_threshold: int = 250_000  # auto switches from exact to IVF at this many vectors
    nprobe: int = 0  # IVF lists probed per query; 0 tunes it at build time to target_recall
    target_recall: float = 0.95  # recall@10 against exact search that auto nprobe aims for
    memory_budget: int = 0  # bytes an index may keep resident; 0: no limit (auto never compresses)
    refine: int = 4  # sq8/ivfpq: candidates per hit reranked with float vectors; 0: codes only
    retrain_factor: float = 4.0  # retrain IVF lists once the count passes this times what trained them; 0: never

    def __post_init__(self) -> None:
        if self.kind not in (*KINDS, AUTO):
            raise ValueError(f"index kind must be one of {', '.join((*KINDS, AUTO))}, not {self.kind!r}")
        if self.memory_budget < 0 or self.refine < 0 or self.retrain_factor < 0:
            raise ValueError("memory_budget, refine and retrain_factor must not be negative")

    def kind_for(self, count: int, dim: int = 0) -> str:
        """The kind an index of ``count`` vectors of width ``dim`` should be."""
        if self.kind != AUTO:
            return self.kind
        # IVF needs enough points to train its lists (see build_index).
        plain = IVF if count >= max(self.approx_threshold, IVF_MIN_VECTORS) else EXACT
        if not self.memory_budget or not dim or count < IVF_MIN_VECTORS:
            return plain  # below 1,000 vectors (2 MB at 512-d) exact costs nothing worth saving
        for kind in (plain, SQ8, IVFPQ):
            if estimate_bytes(kind, count, dim) <= self.memory_budget:
                return kind
        return ONDISK


def load_config(path: Path) -> IndexConfig | None:
    """The index config saved at ``path`` (a library's ``index.json``); None when there is none.

    Raises:
        CorruptFileError: the file is not a readable index config.
    """
    try:
        raw = json.loads(Path(path).read_text())
        names = {f.name for f in fields(IndexConfig)}
        return IndexConfig(**{k: v for k, v in raw.items() if k in names})
    except FileNotFoundError:
        return None
    except (OSError, ValueError, TypeError, AttributeError) as exc:
        raise CorruptFileError(f"{path} is unreadable ({exc}); delete it to use the default index settings.") from exc


def remember_config(path: Path, given: IndexConfig | None) -> IndexConfig:
    """``given`` (saved at ``path`` for later opens when it changed), else the saved config, else the default."""
    saved = load_config(path)
    if given is None:
        return saved or IndexConfig()
    if given != saved:
        atomic_write_bytes(path, (json.dumps(asdict(given), indent=2, sort_keys=True) + "\n").encode())
    return given
