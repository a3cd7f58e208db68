"""Filtered search latency: 1%, 10% and 50% of the vectors allowed, against unfiltered.

    .venv/bin/python benchmarks/bench_filter.py --size 1000000 --out filter.json

Vectors and queries come from bench_query's clustered synthetic distribution (512-d).
For each selectivity a random id subset is allowed; single queries (k=10) run through
``ExactIndex.search(..., allowed)`` and ``IVFIndex.search(..., allowed)`` (auto-tuned
nprobe), taking turns; recall@10 of IVF is against the exact filtered result. The
catalog side (``Catalog.select_images`` turning a folder filter into ids) is timed on
an SQLite catalog of the same size.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import _common  # noqa: F401  (sets sys.path before the library imports)
import numpy as np
from _common import (
    environment,
    environment_line,
    markdown_table,
    median,
    percentile,
    write_json,
)
from bench_query import DIM, Clustered, K

from index.kinds.exact import ExactIndex
from index.kinds.ivf import IVFIndex


def _latencies(search, queries: np.ndarray, warmup: int = 5) -> tuple[list[float], list]:  # noqa: ANN001
    for q in queries[:warmup]:
        search(q[None])
    times, results = [], []
    for q in queries[warmup:]:
        start = time.perf_counter()
        results.append(search(q[None])[0])
        times.append((time.perf_counter() - start) * 1e3)
    return times, results


def bench_vectors(n: int, count: int, seed: int) -> list[dict[str, object]]:
    gen = Clustered(DIM, 1000, seed)
    vectors, queries = gen.sample(n, seed + 1), gen.sample(count + 5, seed + 2)
    ids = np.arange(n, dtype=np.int64)
    exact = ExactIndex(DIM, ids, vectors)
    start = time.perf_counter()
    ivf = IVFIndex.build(DIM, ids, vectors)
    print(f"IVF build {time.perf_counter() - start:.0f} s, nprobe {ivf.nprobe}", flush=True)
    rows = []
    rng = np.random.default_rng(seed)
    for share in (None, 0.5, 0.1, 0.01):
        allowed = None if share is None else np.sort(rng.choice(ids, int(share * n), replace=False))
        t_exact, r_exact = _latencies(lambda q: exact.search(q, K, allowed), queries)
        t_ivf, r_ivf = _latencies(lambda q: ivf.search(q, K, allowed), queries)
        recall = np.mean([len(set(a.ids.tolist()) & set(b.ids.tolist())) / K for a, b in zip(r_exact, r_ivf)])
        full = min(len(r.ids) for r in r_ivf) == K
        label = "unfiltered" if share is None else f"{share:.0%} allowed"
        for method, times in (("exact", t_exact), ("ivf", t_ivf)):
            rows.append(
                {
                    "selection": label,
                    "method": method,
                    "p50_ms": median(times),
                    "p99_ms": percentile(times, 99),
                    "ivf_recall_at_10": float(recall),
                    "k_hits_always": full,
                }
            )
        print(
            label,
            f"exact p50 {median(t_exact):.1f} ms, ivf p50 {median(t_ivf):.2f} ms, recall {recall:.3f}",
            flush=True,
        )
    return rows


def bench_catalog(n: int) -> dict[str, float]:
    """Seconds for Catalog.select_images on n rows, half of them under the filtered folder."""
    from sqlalchemy import insert

    from index.catalog import Catalog, sqlite_url
    from index.records import ImageFilter
    from index.schema import ImageRow

    with tempfile.TemporaryDirectory() as tmp:
        catalog = Catalog(sqlite_url(str(Path(tmp) / "c.sqlite")))
        rows = [
            {
                "path": f"/photos/{'a' if i % 2 else 'b'}/{i:07d}.jpg",
                "size": 1,
                "mtime_ns": i,
                "content_hash": "",
                "state": "indexed",
                "vector": b"\0\0\0\0",
                "vector_gen": 1,
            }
            for i in range(n)
        ]
        with catalog.engine.begin() as conn:
            conn.execute(insert(ImageRow), rows)
        out = {}
        for label, where in (
            ("folder 50%", ImageFilter(under=("/photos/a",))),
            ("extension 100%", ImageFilter(extensions=(".jpg",))),
        ):
            times = []
            for _ in range(3):
                start = time.perf_counter()
                catalog.select_images(where)
                times.append(time.perf_counter() - start)
            out[label] = median(times)
        catalog.close()
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", type=int, default=1_000_000)
    parser.add_argument("--queries", type=int, default=50)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args(argv)
    env = environment(("numpy", "faiss"))
    rows = bench_vectors(args.size, args.queries, args.seed)
    print(
        markdown_table(
            ["selection", "method", "p50 ms", "p99 ms", "IVF recall@10", "k hits always"],
            [
                [
                    r["selection"],
                    r["method"],
                    f"{r['p50_ms']:.2f}",
                    f"{r['p99_ms']:.2f}",
                    f"{r['ivf_recall_at_10']:.3f}",
                    r["k_hits_always"],
                ]
                for r in rows
            ],
        )
    )
    catalog = bench_catalog(args.size)
    print(
        "catalog select_images at",
        f"{args.size:,} rows:",
        ", ".join(f"{k} {v * 1e3:.0f} ms" for k, v in catalog.items()),
    )
    print(environment_line(env))
    write_json(args.out, {"size": args.size, "rows": rows, "catalog_select_s": catalog, "environment": env})
    return 0


if __name__ == "__main__":
    sys.exit(main())
