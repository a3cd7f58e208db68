"""Block checksums of derived files, so damage that keeps a file's size is seen on load.

A file is written through :class:`SummedWriter`, which appends a footer: the CRC-32 of
every ``BLOCK`` bytes of what came before it (header and payload alike), their count, the
block size and a magic. :func:`verify` recomputes them, a block per task in a few threads
(``zlib.crc32`` releases the GIL), and names the damaged byte ranges.

CRC-32 because it is what load time can afford: it runs at memory speed per core (about
1 GB/s with the zlib of CPython builds, ~4x blake2b; see benchmarks/README.md), and it
catches what damage looks like here (overwritten rows, zeroed or torn pages, flipped
bits), which is all it is for: these files are copies of the catalog, rebuilt from it.
"""

from __future__ import annotations

import os
import struct
import zlib
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import BinaryIO

__all__ = ["BLOCK", "FOOTER_MAGIC", "SummedWriter", "footer_size", "read_footer", "verify"]

BLOCK = 1 << 20  # bytes per checksum: 4 bytes of footer per MiB, and damage located to a MiB
FOOTER_MAGIC = b"XMRSUM\x00\x01"
_TAIL = struct.Struct("<QI8s")  # block count, block size, magic: the last 20 bytes of the file
_THREADS = min(8, os.cpu_count() or 1)  # crc32 releases the GIL: a thread per core checks at memory speed


class SummedWriter:
    """A binary writer that checksums every :data:`BLOCK` bytes written through it.

    Call :meth:`finish` after the last write: it appends the footer.
    """

    def __init__(self, out: BinaryIO, block: int = BLOCK) -> None:
        self.out = out
        self.block = block
        self._sums: list[int] = []
        self._crc = 0
        self._filled = 0  # bytes of the current block so far

    def write(self, data: bytes | bytearray | memoryview) -> int:
        view = memoryview(data).cast("B")
        self.out.write(view)
        while view:
            take = min(len(view), self.block - self._filled)
            self._crc = zlib.crc32(view[:take], self._crc)
            self._filled += take
            view = view[take:]
            if self._filled == self.block:
                self._sums.append(self._crc)
                self._crc, self._filled = 0, 0
        return len(data)

    def finish(self) -> None:
        """Write the footer: the sums (``<u4`` each), then count, block size and magic."""
        if self._filled:
            self._sums.append(self._crc)
            self._crc, self._filled = 0, 0
        self.out.write(struct.pack(f"<{len(self._sums)}I", *self._sums))
        self.out.write(_TAIL.pack(len(self._sums), self.block, FOOTER_MAGIC))


def footer_size(count: int) -> int:
    """Bytes of a footer holding ``count`` sums."""
    return 4 * count + _TAIL.size


def read_footer(path: Path, size: int) -> tuple[int, int, tuple[int, ...]] | None:
    """``(covered bytes, block size, sums)`` from the footer of the file at ``path``; None if it has none."""
    if size < _TAIL.size:
        return None
    with open(path, "rb") as handle:
        handle.seek(size - _TAIL.size)
        count, block, magic = _TAIL.unpack(handle.read(_TAIL.size))
        if magic != FOOTER_MAGIC or block <= 0 or footer_size(count) > size:
            return None
        covered = size - footer_size(count)
        if count != -(-covered // block):
            return None
        handle.seek(covered)
        sums = struct.unpack(f"<{count}I", handle.read(4 * count))
    return covered, block, sums


def verify(path: Path, covered: int, block: int, sums: Sequence[int]) -> list[tuple[int, int]]:
    """The ``(start, end)`` byte ranges of ``path`` whose checksum does not match; empty when sound."""
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_BINARY", 0))
    try:

        def bad(index: int) -> bool:
            start = index * block
            length = min(block, covered - start)
            if hasattr(os, "pread"):
                data = os.pread(fd, length, start)
            else:  # Windows: a handle per block (seek and read are not safe to share between threads)
                with open(path, "rb") as handle:
                    handle.seek(start)
                    data = handle.read(length)
            return zlib.crc32(data) != sums[index]

        with ThreadPoolExecutor(_THREADS, thread_name_prefix="xmr-verify") as pool:
            flags = list(pool.map(bad, range(len(sums)), chunksize=16))
    finally:
        os.close(fd)
    return [(i * block, min((i + 1) * block, covered)) for i, wrong in enumerate(flags) if wrong]
