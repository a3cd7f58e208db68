"""Load-time cost of checking a vector snapshot's checksums (issue 23, item 5).

For each size, an exact snapshot of ``dim``-d float32 vectors is written (the rows streamed
from a memory-mapped scratch file, so memory stays small), then opened:

- ``open, unchecked``: header and memory map only (what a load cost before checksums);
- ``verify``: :func:`index.checksums.verify` over every block, in its thread pool (what a load
  adds now);
- ``first search``: one exact query over the memory-mapped rows right after the load (the
  pages the check has just read), for scale;

and the single-thread throughput of candidate checksums over the same bytes (CRC-32 and
Adler-32 from zlib, blake2b and sha256 from hashlib) in 1 MiB blocks. The page cache is
warm (the file was just written): on a cold cache the check also reads the file from disk,
which the first exact search would have done anyway.

Usage: python benchmarks/bench_checksums.py [--sizes 100000,1000000] [--dim 512] [--repeats 3]
       [--workdir /tmp/xmr-bench-sums] [--out FILE]
"""

from __future__ import annotations

import argparse
import hashlib
import shutil
import time
import zlib
from collections.abc import Callable
from pathlib import Path

import _common  # noqa: F401  (sets sys.path before the library imports)
import numpy as np
from _common import environment, environment_line, markdown_table, median, write_json

from index.checksums import BLOCK, read_footer, verify
from index.kinds.exact import ExactIndex
from index.snapshot import read_header, write_snapshot

_ROWS = 65_536  # rows generated per chunk of the scratch file


def _snapshot(workdir: Path, count: int, dim: int) -> Path:
    """An exact snapshot of ``count`` random unit rows, written through a memory-mapped scratch file."""
    scratch = workdir / f"rows-{count}.f32"
    rows = np.memmap(scratch, dtype="<f4", mode="w+", shape=(count, dim))
    rng = np.random.default_rng(0)
    for start in range(0, count, _ROWS):
        block = rng.standard_normal((min(_ROWS, count - start), dim)).astype(np.float32)
        rows[start : start + len(block)] = block / np.linalg.norm(block, axis=1, keepdims=True)
    rows.flush()
    path = workdir / f"images-{count}.vec"
    write_snapshot(path, ExactIndex(dim, np.arange(1, count + 1, dtype=np.int64), rows), 1)
    del rows
    scratch.unlink()
    return path


def _throughput(path: Path, limit: int = 256 * 2**20) -> dict[str, float]:
    """GB/s of each checksum over the first ``limit`` bytes of ``path``, one thread, 1 MiB blocks."""
    with open(path, "rb") as handle:
        data = memoryview(handle.read(limit))
    algorithms: dict[str, Callable[[memoryview], object]] = {
        "crc32 (zlib)": zlib.crc32,
        "adler32 (zlib)": zlib.adler32,
        "blake2b-128 (hashlib)": lambda b: hashlib.blake2b(b, digest_size=16).digest(),
        "sha256 (hashlib)": lambda b: hashlib.sha256(b).digest(),
    }
    out = {}
    for name, fn in algorithms.items():
        seconds = []
        for _ in range(3):
            start = time.perf_counter()
            for at in range(0, len(data), BLOCK):
                fn(data[at : at + BLOCK])
            seconds.append(time.perf_counter() - start)
        out[name] = len(data) / median(seconds) / 1e9
    return out


def _measure(path: Path, dim: int, repeats: int) -> dict[str, float]:
    size = path.stat().st_size
    opened, checked, searched = [], [], []
    query = np.random.default_rng(1).standard_normal(dim).astype(np.float32)
    for _ in range(repeats):
        start = time.perf_counter()
        header, offset = read_header(path)
        covered, block, sums = read_footer(path, size)  # type: ignore[misc]
        rows = np.memmap(path, dtype="<f4", mode="r", offset=offset + 8 * header.count, shape=(header.count, dim))
        opened.append(time.perf_counter() - start)
        start = time.perf_counter()
        bad = verify(path, covered, block, sums)
        checked.append(time.perf_counter() - start)
        assert not bad
        start = time.perf_counter()
        int(np.argmax(rows @ query))
        searched.append(time.perf_counter() - start)
        del rows
    return {
        "bytes": size,
        "open_unchecked_s": median(opened),
        "verify_s": median(checked),
        "first_search_s": median(searched),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="100000,1000000")
    parser.add_argument("--dim", type=int, default=512)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--workdir", default="/tmp/xmr-bench-sums")
    parser.add_argument("--out", default="")
    args = parser.parse_args()
    workdir = Path(args.workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    env = environment(("numpy",))
    print(environment_line(env))
    results: list[dict[str, float]] = []
    speeds: dict[str, float] = {}
    try:
        for count in (int(s) for s in args.sizes.split(",")):
            path = _snapshot(workdir, count, args.dim)
            figures = {"vectors": count, **_measure(path, args.dim, args.repeats)}
            results.append(figures)
            if not speeds:
                speeds = _throughput(path)
            path.unlink()
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    rows = [
        [
            f"{r['vectors']:,}",
            f"{r['bytes'] / 2**20:,.0f}",
            f"{1000 * r['open_unchecked_s']:.1f}",
            f"{1000 * r['verify_s']:.0f}",
            f"{r['bytes'] / r['verify_s'] / 1e9:.2f}",
            f"{1000 * r['first_search_s']:.0f}",
        ]
        for r in results
    ]
    print(
        markdown_table(
            ["vectors", "snapshot MiB", "open, unchecked ms", "verify ms", "verify GB/s", "first exact search ms"], rows
        )
    )
    print(markdown_table(["checksum", "GB/s, one thread"], [[k, f"{v:.2f}"] for k, v in speeds.items()]))
    write_json(args.out or None, {"environment": env, "sizes": results, "throughput_gbps": speeds, "dim": args.dim})


if __name__ == "__main__":
    main()
