"""On-disk snapshot of a vector index: one file, versioned header, written atomically.

Layout: ``MAGIC`` (8 bytes), header length (uint32 LE), JSON header, then the payload:
ids ``int64[count]`` followed by either the raw ``float32[count, dim]`` matrix (exact)
or a serialized faiss index (ivf). The header records the catalog generation the
snapshot reflects, so a stale snapshot is detected and brought up to date on open.
"""

from __future__ import annotations

import json
import struct
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from index.atomic import atomic_writer
from index.errors import CorruptFileError, LibraryVersionError
from index.vectors import EXACT, IVF, ExactIndex, IVFIndex, VectorIndex

MAGIC = b"XMRVEC\x00\x01"
# 1: first layout (exact matrix or faiss IVF payload after the ids).
SNAPSHOT_VERSION = 1


@dataclass(frozen=True)
class SnapshotHeader:
    version: int  # SNAPSHOT_VERSION of the writer
    kind: str  # EXACT or IVF
    dim: int  # vector width
    count: int  # number of vectors
    generation: int  # catalog generation this snapshot reflects
    nprobe: int = 32  # IVF lists probed per query (ivf only)


def write_snapshot(path: Path, index: VectorIndex, generation: int) -> None:
    """Write ``index`` to ``path`` atomically (temp file, fsync, rename)."""
    header = SnapshotHeader(
        version=SNAPSHOT_VERSION,
        kind=index.kind,
        dim=index.dim,
        count=len(index),
        generation=generation,
        nprobe=getattr(index, "nprobe", 32),
    )
    raw = json.dumps(header.__dict__).encode()
    with atomic_writer(path) as out:
        out.write(MAGIC + struct.pack("<I", len(raw)) + raw)
        out.write(np.ascontiguousarray(index.ids(), dtype="<i8").tobytes())
        if isinstance(index, ExactIndex):
            # Written in row blocks so a memory-mapped source is not copied whole.
            vectors = index.vectors()
            for start in range(0, len(vectors), 1 << 16):
                out.write(np.ascontiguousarray(vectors[start : start + (1 << 16)], "<f4").tobytes())
        elif isinstance(index, IVFIndex):
            out.write(index.serialize().tobytes())
        else:
            raise TypeError(f"cannot snapshot index kind {index.kind!r}")


def _corrupt(path: Path, why: str) -> CorruptFileError:
    return CorruptFileError(
        f"vector index {path} is damaged ({why}). It is rebuilt from the catalog on the next "
        "open: run  xmr info  (or delete the file) to rebuild it."
    )


def read_header(path: Path) -> tuple[SnapshotHeader, int]:
    """Header of the snapshot at ``path`` and the byte offset where its payload starts."""
    try:
        with open(path, "rb") as handle:
            head = handle.read(12)
            if len(head) < 12 or head[:8] != MAGIC:
                raise _corrupt(path, "not an xmr vector snapshot")
            (length,) = struct.unpack("<I", head[8:12])
            raw = handle.read(length)
        fields = json.loads(raw)
        # Checked before the fields are bound: a newer writer may have added some, and
        # calling that "damaged" would get the newer file rebuilt over (downgraded).
        version = fields.get("version") if isinstance(fields, dict) else None
        if isinstance(version, int) and version > SNAPSHOT_VERSION:
            raise LibraryVersionError(
                f"{path} was written by a newer xmr (snapshot v{version}); upgrade xmr."
            )
        header = SnapshotHeader(**fields)
    except (LibraryVersionError, CorruptFileError):
        raise
    except (ValueError, TypeError, struct.error) as exc:
        raise _corrupt(path, f"unreadable header: {exc}") from exc
    return header, 12 + length


def read_snapshot(path: Path, dim: int) -> tuple[VectorIndex, int]:
    """Load the snapshot at ``path``; returns the index and the generation it reflects.

    Exact snapshots are memory-mapped, so opening a large library costs no read up front.

    Raises:
        CorruptFileError: the file is truncated, damaged or of another width.
    """
    header, offset = read_header(path)
    if header.dim != dim:
        raise _corrupt(path, f"it holds {header.dim}-d vectors, the library's model makes {dim}-d")
    size = path.stat().st_size
    ids_end = offset + 8 * header.count
    if header.kind == EXACT:
        expected = ids_end + 4 * header.count * dim
        if size != expected:
            raise _corrupt(path, f"{size} bytes, expected {expected}")
        if header.count == 0:
            return ExactIndex(dim), header.generation
        ids = np.array(np.memmap(path, dtype="<i8", mode="r", offset=offset, shape=(header.count,)))
        vectors = np.memmap(path, dtype="<f4", mode="r", offset=ids_end, shape=(header.count, dim))
        return ExactIndex(dim, ids, vectors), header.generation
    if header.kind == IVF:
        if size < ids_end:
            raise _corrupt(path, "truncated")
        ids = np.fromfile(path, dtype="<i8", count=header.count, offset=offset)
        payload = np.fromfile(path, dtype=np.uint8, offset=ids_end)
        try:
            return IVFIndex.deserialize(dim, ids, payload, header.nprobe), header.generation
        except RuntimeError as exc:
            raise _corrupt(path, f"faiss could not read it: {exc}") from exc
    raise _corrupt(path, f"unknown index kind {header.kind!r}")
