"""On-disk snapshot of a vector index: one file, versioned header, written atomically.

Layout: ``MAGIC`` (8 bytes), header length (uint32 LE), JSON header, then the payload:

- exact: ids ``int64[count]``, the raw ``float32[count, dim]`` matrix (memory-mapped on open);
- ivf: ids ``int64[count]``, a serialized faiss index;
- sq8, ivfpq: ids ``int64[count]`` ascending, their float vectors ``float32[count, dim]`` in
  the same order (memory-mapped on open: the rerank copies), a serialized faiss index;
- ondisk: centroids ``float32[nlist, dim]``, the list table ``int64[nlist, 3]`` and the
  dead-row bitmap ``uint8[ceil(rows / 8)]``; the rows themselves live in the build
  directory the header names (see :mod:`index.kinds.ondisk`), so replacing this file atomically
  switches builds or publishes appended rows.

The header records the catalog generation the snapshot reflects, so a stale snapshot is
detected and brought up to date on open.
"""

from __future__ import annotations

import json
import struct
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from index.atomic import atomic_writer
from index.checksums import SummedWriter, read_footer, verify
from index.errors import CorruptFileError, LibraryVersionError
from index.kinds.compressed import COMPRESSED_KINDS, CompressedIndex
from index.kinds.exact import ExactIndex
from index.kinds.ivf import IVFIndex
from index.kinds.ondisk import Layout, OnDiskIndex, RowFiles
from index.kinds.rows import FloatRows
from index.vectors import EXACT, IVF, ONDISK, VectorIndex

MAGIC = b"XMRVEC\x00\x01"
# 1: first layout (exact matrix or faiss IVF payload after the ids).
# 2: sq8/ivfpq (codes plus float rows) and ondisk (table of a build directory); trained_on.
# 3: a checksum footer (index.checksums: CRC-32 per MiB of magic, header and payload), checked
#    on load: damage that keeps the size (overwritten rows) was served as vectors. Versions 1
#    and 2 still load, unchecked, and are written as 3 by the next index run.
SNAPSHOT_VERSION = 3
_BLOCK = 1 << 16


@dataclass(frozen=True)
class SnapshotHeader:
    version: int  # SNAPSHOT_VERSION of the writer
    kind: str  # one of index.vectors.KINDS
    dim: int  # vector width
    count: int  # number of vectors
    generation: int  # catalog generation this snapshot reflects
    nprobe: int = 32  # IVF lists probed per query (all kinds but exact)
    trained_on: int = 0  # vectors the IVF lists were trained on (0: count)
    refine: int = 0  # sq8/ivfpq: candidates per hit reranked with the float rows
    directory: str = ""  # ondisk: build directory, relative to the snapshot's folder
    nlist: int = 0  # ondisk: number of lists
    rows: int = 0  # ondisk: rows allocated in the build's files


def write_snapshot(path: Path, index: VectorIndex, generation: int) -> None:
    """Write ``index`` to ``path`` atomically (temp file, fsync, rename).

    An on-disk index must be flushed first (:meth:`OnDiskIndex.flushed`): the snapshot
    records only what its files hold.
    """
    path = Path(path)
    header = SnapshotHeader(
        version=SNAPSHOT_VERSION,
        kind=index.kind,
        dim=index.dim,
        count=len(index),
        generation=generation,
        nprobe=getattr(index, "nprobe", 32),
        trained_on=getattr(index, "trained_on", 0),
        refine=getattr(index, "refine", 0),
    )
    if isinstance(index, OnDiskIndex):
        if index.dirty():
            raise ValueError("flush the on-disk index before writing its snapshot")
        lay = index.layout
        directory = str(Path(lay.directory).resolve().relative_to(path.parent.resolve()))
        header = replace(header, directory=directory, nlist=index.nlist, rows=lay.rows)
    raw = json.dumps(header.__dict__).encode()
    with atomic_writer(path) as handle:
        out = SummedWriter(handle)
        out.write(MAGIC + struct.pack("<I", len(raw)) + raw)
        _write_payload(out, index)
        out.finish()


def _write_payload(out: SummedWriter, index: VectorIndex) -> None:
    if isinstance(index, CompressedIndex):  # before IVFIndex: it is one
        _write_compressed(out, index)
    elif isinstance(index, OnDiskIndex):
        lay = index.layout
        out.write(np.ascontiguousarray(lay.centroids, "<f4").tobytes())
        out.write(np.ascontiguousarray(lay.table, "<i8").tobytes())
        out.write(np.packbits(lay.dead, bitorder="little").tobytes())
    elif isinstance(index, ExactIndex):
        out.write(np.ascontiguousarray(index.ids(), dtype="<i8").tobytes())
        # Written in row blocks so a memory-mapped source is not copied whole.
        vectors = index.vectors()
        for start in range(0, len(vectors), _BLOCK):
            out.write(np.ascontiguousarray(vectors[start : start + _BLOCK], "<f4").tobytes())
    elif isinstance(index, IVFIndex):
        out.write(np.ascontiguousarray(index.ids(), dtype="<i8").tobytes())
        out.write(index.serialize().tobytes())
    else:
        raise TypeError(f"cannot snapshot index kind {index.kind!r}")


def _write_compressed(out: SummedWriter, index: CompressedIndex) -> None:
    ids = np.sort(index.ids())
    out.write(np.ascontiguousarray(ids, dtype="<i8").tobytes())
    written = 0
    for block_ids, vectors in index.rows.sorted_blocks(_BLOCK):
        if not np.array_equal(block_ids, ids[written : written + len(block_ids)]):
            raise ValueError("the float rows of a compressed index disagree with its ids")
        out.write(np.ascontiguousarray(vectors, "<f4").tobytes())
        written += len(block_ids)
    if written != len(ids):
        raise ValueError("the float rows of a compressed index disagree with its ids")
    out.write(index.serialize().tobytes())


def _corrupt(path: Path, why: str) -> CorruptFileError:
    return CorruptFileError(
        f"vector index {path} is damaged ({why}). It is rebuilt from the catalog, which holds every "
        "vector: the next  xmr index  or  xmr info  saves the rebuilt one (or delete the file)."
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
            raise LibraryVersionError(f"{path} was written by a newer xmr (snapshot v{version}); upgrade xmr.")
        header = SnapshotHeader(**fields)
    except (LibraryVersionError, CorruptFileError):
        raise
    except (ValueError, TypeError, struct.error) as exc:
        raise _corrupt(path, f"unreadable header: {exc}") from exc
    return header, 12 + length


def payload_end(path: Path, header: SnapshotHeader, verify_sums: bool = True) -> int:
    """Where the payload of the snapshot at ``path`` ends (its checksum footer, if any, follows).

    A version 3 snapshot has its block checksums checked here (``verify_sums``); versions 1
    and 2 have none and load unchecked.

    Raises:
        CorruptFileError: the footer is missing, or a block does not match its checksum.
    """
    size = path.stat().st_size
    if header.version < 3:
        return size
    footer = read_footer(path, size)
    if footer is None:
        raise _corrupt(path, "its checksum footer is missing or damaged")
    covered, block, sums = footer
    if verify_sums:
        bad = verify(path, covered, block, sums)
        if bad:
            where = ", ".join(f"{start}-{end}" for start, end in bad[:5]) + (" ..." if len(bad) > 5 else "")
            raise _corrupt(path, f"{len(bad)} of its {len(sums)} blocks do not match their checksums (bytes {where})")
    return covered


def read_snapshot(path: Path, dim: int) -> tuple[VectorIndex, int]:
    """Load the snapshot at ``path``; returns the index and the generation it reflects.

    Every block is checked against its checksum first (version 3), so an index that was
    overwritten in place is rebuilt rather than searched. Exact snapshots are then
    memory-mapped (the check has just read them into the page cache).

    Raises:
        CorruptFileError: the file is truncated, damaged or of another width.
    """
    header, offset = read_header(path)
    if header.dim != dim:
        raise _corrupt(path, f"it holds {header.dim}-d vectors, the library's model makes {dim}-d")
    size = payload_end(path, header)
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
        payload = np.fromfile(path, dtype=np.uint8, count=size - ids_end, offset=ids_end)
        return IVFIndex(dim, _faiss_payload(path, payload), ids, header.nprobe, header.trained_on), header.generation
    if header.kind in COMPRESSED_KINDS:
        rows_end = ids_end + 4 * header.count * dim
        if size < rows_end or header.count == 0:
            raise _corrupt(path, "truncated")
        ids = np.fromfile(path, dtype="<i8", count=header.count, offset=offset)
        vectors = np.memmap(path, dtype="<f4", mode="r", offset=ids_end, shape=(header.count, dim))
        payload = np.fromfile(path, dtype=np.uint8, count=size - rows_end, offset=rows_end)
        index = CompressedIndex(
            dim,
            _faiss_payload(path, payload),
            ids,
            header.nprobe,
            header.trained_on,
            kind=header.kind,
            rows=FloatRows(dim, ids, vectors),
            refine=header.refine,
        )
        return index, header.generation
    if header.kind == ONDISK:
        return _read_ondisk(path, header, offset, size), header.generation
    raise _corrupt(path, f"unknown index kind {header.kind!r}")


def _faiss_payload(path: Path, payload: np.ndarray):  # noqa: ANN202 (faiss index)
    from index.deps import require_faiss

    try:
        return require_faiss().deserialize_index(np.ascontiguousarray(payload))
    except RuntimeError as exc:
        raise _corrupt(path, f"faiss could not read it: {exc}") from exc


def _read_ondisk(path: Path, header: SnapshotHeader, offset: int, size: int) -> OnDiskIndex:
    dim, nlist = header.dim, header.nlist
    bitmap = (header.rows + 7) // 8
    if size != offset + 4 * nlist * dim + 24 * nlist + bitmap or nlist < 1:
        raise _corrupt(path, f"{size} bytes do not match its table")
    centroids = np.fromfile(path, dtype="<f4", count=nlist * dim, offset=offset).reshape(nlist, dim)
    table = np.fromfile(path, dtype="<i8", count=nlist * 3, offset=offset + 4 * nlist * dim).reshape(nlist, 3)
    bits = np.fromfile(path, dtype=np.uint8, count=bitmap, offset=offset + 4 * nlist * dim + 24 * nlist)
    dead = np.unpackbits(bits, count=header.rows, bitorder="little").astype(bool)
    if (table < 0).any() or (table[:, 1] > table[:, 2]).any() or (table[:, 0] + table[:, 2] > header.rows).any():
        raise _corrupt(path, "its list table is inconsistent")
    directory = path.parent / header.directory
    files = RowFiles(directory, dim)
    why = files.check(header.rows)
    if why:
        raise _corrupt(path, why)
    index = OnDiskIndex(
        dim, Layout(directory, centroids, table, dead, header.rows), files, header.nprobe, header.trained_on
    )
    if len(index) != header.count:
        raise _corrupt(path, f"its files hold {len(index)} live vectors, the header says {header.count}")
    return index
