"""Index kinds for collections larger than memory: size, resident memory, recall, latency, build.

    nice -n 10 .venv/bin/python benchmarks/bench_compress.py --size 1000000 --out /tmp/bench-compress.json

``n`` clustered synthetic 512-d unit vectors (bench_query's generator) are indexed as each
kind; queries are held out from the same distribution. Per kind: build time, snapshot size
on disk per vector, the index's own account of resident bytes per vector, recall@10
against exact search, and single-query (batch 1, k=10) latency. Compressed kinds are
measured with their float-vector rerank (refine 4) and without it (codes only).

Resident memory is measured in a fresh process that only opens the snapshot and runs the
queries (``RssAnon``: heap; ``RssFile``: memory-mapped pages, which the OS can drop), so
the figures are not polluted by the build. The on-disk and rerank files were just written,
so the page cache is warm: latencies are warm-cache figures.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import _common  # noqa: F401  (sets sys.path before the library imports)
import numpy as np
from _common import REPO_ROOT, environment, environment_line, markdown_table, write_json
from bench_query import DIM, Clustered, K

KINDS = ("exact", "ivf", "sq8", "ivfpq", "ondisk")

# Runs in a fresh interpreter: open a snapshot, time single queries, report recall and memory.
PROBE = r"""
import json, sys, time
import numpy as np
sys.path.insert(0, sys.argv[1])
from index.snapshot import read_snapshot
path, queries_file, truth_file, refine = sys.argv[2], sys.argv[3], sys.argv[4], int(sys.argv[5])
queries, truth = np.load(queries_file), np.load(truth_file)
index, _ = read_snapshot(__import__("pathlib").Path(path), queries.shape[1])
if refine >= 0:
    index = index.with_refine(refine)
for q in queries[:10]:
    index.search(q.reshape(1, -1), 10)
times, found = [], []
for q in queries:
    start = time.perf_counter()
    (hit,) = index.search(q.reshape(1, -1), 10)
    times.append(time.perf_counter() - start)
    found.append(hit.ids)
recall = float(np.mean([len(set(f.tolist()) & set(t.tolist())) / 10 for f, t in zip(found, truth)]))
status = dict(line.split(":", 1) for line in open("/proc/self/status") if line.startswith(("VmRSS", "RssAnon", "RssFile")))
kib = {k: int(v.split()[0]) for k, v in status.items()}
print(json.dumps({"recall": recall, "p50_ms": 1000 * float(np.median(times)), "rss_anon": kib["RssAnon"] * 1024,
                  "rss_file": kib["RssFile"] * 1024, "memory_bytes": int(getattr(index, "memory_bytes", lambda: 0)())}))
"""


def _size_on_disk(path: Path) -> int:
    total = path.stat().st_size
    builds = Path(f"{path}.d")
    if builds.exists():
        total += sum(f.stat().st_size for f in builds.rglob("*") if f.is_file())
    return total


def _build(kind: str, ids: np.ndarray, x: np.ndarray, path: Path):  # noqa: ANN202
    from index.kinds.compressed import build_compressed
    from index.kinds.exact import ExactIndex
    from index.kinds.ivf import IVFIndex
    from index.kinds.ondisk_build import build_ondisk_from_arrays

    if kind == "exact":
        return ExactIndex(DIM, ids, x)
    if kind == "ivf":
        return IVFIndex.build(DIM, ids, x)
    if kind == "ondisk":
        return build_ondisk_from_arrays(path, DIM, ids, x)
    return build_compressed(kind, DIM, ids, x)


def _probe(path: Path, queries: Path, truth: Path, refine: int) -> dict[str, float]:
    cmd = [sys.executable, "-c", PROBE, str(REPO_ROOT), str(path), str(queries), str(truth), str(refine)]
    done = subprocess.run(cmd, capture_output=True, text=True, check=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", type=int, default=1_000_000)
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--kinds", default=",".join(KINDS))
    parser.add_argument("--clusters", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--workdir", type=Path, default=None, help="where snapshots are written (default: a temp dir)")
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args(argv)

    from index.kinds.exact import ExactIndex
    from index.snapshot import write_snapshot

    gen = Clustered(DIM, args.clusters, args.seed)
    x = gen.sample(args.size, args.seed + 1)
    ids = np.arange(args.size, dtype=np.int64)
    queries = gen.sample(args.queries, args.seed + 2)
    truth = np.stack([n.ids for n in ExactIndex(DIM, ids, x).search(queries, K)])
    work = Path(args.workdir or tempfile.mkdtemp(prefix="bench-compress-"))
    work.mkdir(parents=True, exist_ok=True)
    np.save(work / "queries.npy", queries)
    np.save(work / "truth.npy", truth)
    env = environment()
    results: dict[str, object] = {
        "env": env,
        "size": args.size,
        "queries": args.queries,
        "clusters": args.clusters,
        "kinds": {},
    }
    rows = []
    for kind in args.kinds.split(","):
        path = work / f"{kind}.vec"
        start = time.perf_counter()
        index = _build(kind, ids, x, path)
        build_s = time.perf_counter() - start
        if kind == "ondisk":
            index = index.flushed()
        write_snapshot(path, index, generation=1)
        nprobe = getattr(index, "nprobe", None)
        del index
        size = _size_on_disk(path)
        refines = [4, 0] if kind in ("sq8", "ivfpq") else [-1]
        for refine in refines:
            probe = _probe(path, work / "queries.npy", work / "truth.npy", refine)
            label = kind + ("" if refine < 0 else f" refine {refine}" if refine else " codes only")
            results["kinds"][label] = {"build_s": build_s, "disk_bytes": size, "nprobe": nprobe, **probe}  # type: ignore[index]
            rows.append(
                [
                    label,
                    f"{build_s:.0f}",
                    f"{size / args.size:.0f}",
                    f"{probe['memory_bytes'] / args.size:.1f}",
                    f"{probe['rss_anon'] / 2**20:.0f} / {probe['rss_file'] / 2**20:.0f}",
                    f"{probe['recall']:.3f}",
                    f"{probe['p50_ms']:.2f}",
                    nprobe,
                ]
            )
            print(f"{label}: {results['kinds'][label]}", file=sys.stderr, flush=True)  # type: ignore[index]
        if kind != "ondisk":
            path.unlink()
        else:
            shutil.rmtree(f"{path}.d", ignore_errors=True)
            path.unlink()
    header = [
        "kind",
        "build s",
        "disk B/vector",
        "resident B/vector (index's account)",
        "RSS anon / file MiB",
        "recall@10",
        "p50 ms",
        "nprobe",
    ]
    print(environment_line(env))
    print(f"n={args.size} x {DIM}, {args.queries} held-out queries, k={K}, {args.clusters} clusters")
    print(markdown_table(header, rows))
    write_json(args.out, results)
    if args.workdir is None:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
