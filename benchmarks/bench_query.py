"""Single-query latency and recall: exact (numpy, faiss flat) vs IVF at several nprobe.

    .venv/bin/python benchmarks/bench_query.py --sizes 10000,100000,1000000 --out results.json

For each size, ``n`` unit vectors (512-d float32) are drawn from a clustered synthetic
distribution (see :class:`Clustered`) and queries are drawn from the same distribution
but are not in the index. The methods take turns, a block of queries each (see
:func:`_interleaved`), so load from other work on the machine hits them all alike.
Latencies are of single queries (batch 1, k=10) after a warm-up; recall@10 is against
the numpy exact search. Thread counts are shown per method: on a busy 2-core machine a
second thread can cost more than it gives. ``--vectors FILE.npy`` benchmarks real embeddings instead
(rows are normalised; the last ``--queries`` rows become the held-out queries).
"""

from __future__ import annotations

import argparse
import gc
import resource
import sys
import time
from pathlib import Path

import _common  # noqa: F401  (sets sys.path before the library imports)
import numpy as np
from _common import blas_thread_setter, environment, environment_line, markdown_table, median, percentile, write_json

DIM = 512
K = 10
_CHUNK = 100_000


class Clustered:
    """A mixture of ``clusters`` blobs on the unit sphere, shaped a little like CLIP embeddings.

    x = centre[c] + B @ z * spread[c] + noise * spread[c], then L2-normalised, where
    cluster sizes are log-normal (a few big topics, many small ones), B is a shared
    ``structure``-dimensional basis (embeddings vary along a few directions more than
    others) and noise is isotropic. Seeded: the same seed gives the same points.
    """

    def __init__(self, dim: int, clusters: int, seed: int, structure: int = 24, spread: float = 1.0) -> None:
        rng = np.random.default_rng(seed)
        self.dim = dim
        self.centres = _unit(rng.standard_normal((clusters, dim), dtype=np.float32))
        weights = rng.lognormal(0.0, 1.0, clusters)
        self.weights = weights / weights.sum()
        self.basis = (rng.standard_normal((structure, dim), dtype=np.float32) / np.sqrt(dim)).astype(np.float32)
        self.scale = (rng.uniform(0.75, 1.25, clusters) * spread).astype(np.float32)
        # Norms relative to a unit centre: structured part ~0.8, isotropic part ~0.3. With
        # structure=24 a query's nearest neighbour has cosine ~0.75 and its 10th ~0.65; unrelated
        # pairs ~0 (CLIP's shared mean direction is left out: it does not change rankings).
        self.structured = np.float32(0.8 / np.sqrt(structure))
        self.isotropic = np.float32(0.3 / np.sqrt(dim))

    def sample(self, n: int, seed: int) -> np.ndarray:
        """``(n, dim)`` float32 unit rows, generated in chunks to bound temporaries."""
        rng = np.random.default_rng(seed)
        out = np.empty((n, self.dim), np.float32)
        for start in range(0, n, _CHUNK):
            m = min(_CHUNK, n - start)
            which = rng.choice(len(self.centres), size=m, p=self.weights)
            z = rng.standard_normal((m, self.basis.shape[0]), dtype=np.float32) * self.structured
            x = z @ self.basis  # basis rows have norm ~1, so this part has norm ~0.8 * spread
            x += rng.standard_normal((m, self.dim), dtype=np.float32) * self.isotropic
            x *= self.scale[which, None]
            x += self.centres[which]
            out[start : start + m] = _unit(x)
        return out


def _unit(x: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12), dtype=np.float32)


def peak_rss_gib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20


def bench_size(
    vectors: np.ndarray, queries: np.ndarray, nprobes: list[int], warmup: int, block: int
) -> tuple[list[dict[str, object]], dict[str, float]]:
    """Latency and recall of every method over ``vectors``; one row per method."""
    import faiss

    from index.kinds.exact import ExactIndex
    from index.kinds.ivf import IVFIndex, ivf_lists, tune_nprobe

    n = len(vectors)
    ids = np.arange(n, dtype=np.int64)
    exact = ExactIndex(DIM, ids, vectors)
    flat = faiss.IndexFlatIP(DIM)
    flat.add(vectors)
    start = time.perf_counter()
    ivf = IVFIndex.build(DIM, ids, vectors)  # the library's default: nprobe tuned at build time
    build_s = time.perf_counter() - start
    tuned = ivf.nprobe
    start = time.perf_counter()
    tune_nprobe(ivf._index, vectors, ids, 0.95)  # noqa: SLF001  (again, only to time the tuning step)
    tune_s = time.perf_counter() - start

    def run_ivf(p: int):  # noqa: ANN202
        def search(q: np.ndarray) -> np.ndarray:
            # One trained index searched at each nprobe: set it on the faiss object.
            ivf.nprobe = ivf._index.nprobe = p  # noqa: SLF001
            return ivf.search(q, K)[0].ids

        return search

    threads = faiss.omp_get_max_threads()
    # name -> (search, threads while it runs: faiss OpenMP and numpy's BLAS are set alike)
    methods = {f"exact numpy, ExactIndex ({threads} threads, default)": (lambda q: exact.search(q, K)[0].ids, threads)}
    if blas_thread_setter() is not None:  # else numpy's BLAS threads cannot be set from here
        methods["exact numpy, ExactIndex (1 thread)"] = (lambda q: exact.search(q, K)[0].ids, 1)
    methods[f"exact faiss IndexFlatIP ({threads} threads, default)"] = (lambda q: _faiss_ids(flat, q), threads)
    methods["exact faiss IndexFlatIP (1 thread)"] = (lambda q: _faiss_ids(flat, q), 1)
    methods.update(
        {
            f"IVF nprobe={p}" + (" (auto-tuned)" if p == tuned else ""): (run_ivf(p), threads)
            for p in sorted({*nprobes, tuned})
        }
    )
    times, found = _interleaved(methods, queries, warmup, block)
    _set_threads(threads)
    truth = found[next(iter(methods))]
    rows = []
    for name in methods:
        recall = float(np.mean([len(np.intersect1d(a, b)) / K for a, b in zip(found[name], truth)]))
        rows.append(
            {
                "method": name,
                "p50_ms": percentile(times[name], 50) * 1e3,
                "p99_ms": percentile(times[name], 99) * 1e3,
                "mean_ms": float(np.mean(times[name])) * 1e3,
                "recall_at_10": recall,
                "queries": len(times[name]),
            }
        )
    flat = methods = None  # free memory before the next size (a del would unbind the names the lambdas close over)
    gc.collect()
    info = {
        "ivf_build_s": build_s,
        "ivf_tune_s": tune_s,
        "ivf_auto_nprobe": tuned,
        "ivf_nlist": ivf_lists(n),
        **_upsert_costs(exact, ivf, queries),
        "peak_rss_gib": peak_rss_gib(),
    }
    exact = ivf = None  # free memory before the next size
    gc.collect()
    return rows, info


def _interleaved(methods: dict, queries: np.ndarray, warmup: int, block: int) -> tuple[dict, dict]:
    """Per-query seconds and ids of every method, taking turns a block of queries at a time.

    Turns share out the load from other work on the machine; blocks (rather than single
    queries) keep one library's spinning OpenMP/BLAS threads from slowing the next one
    down, and the first query of each turn is run untimed for the same reason.
    """
    names = list(methods)
    for name, (search, threads) in methods.items():
        _set_threads(threads)
        for q in queries[:warmup]:
            search(q.reshape(1, -1))
    measured = queries[warmup:]
    times: dict[str, list[float]] = {name: [] for name in names}
    found: dict[str, list[np.ndarray]] = {name: [] for name in names}
    for turn, first in enumerate(range(0, len(measured), block)):
        shift = turn % len(names)
        for name in names[shift:] + names[:shift]:
            search, threads = methods[name]
            _set_threads(threads)
            search(measured[first].reshape(1, -1))  # settle: untimed
            for q in measured[first : first + block]:
                t0 = time.perf_counter()
                hit = search(q.reshape(1, -1))
                times[name].append(time.perf_counter() - t0)
                found[name].append(hit)
    return times, found


def _set_threads(n: int) -> None:
    import faiss

    faiss.omp_set_num_threads(n)
    setter = blas_thread_setter()
    if setter is not None:
        setter(n)


def _upsert_costs(exact, ivf, fresh: np.ndarray, batch: int = 32, repeats: int = 3) -> dict[str, float]:  # noqa: ANN001
    """Median seconds of ``upserted`` with one ingest batch of new vectors (copy on write).

    ``Library.search_vector`` refreshes the store before each query, so while another
    process indexes, a query first pays one of these per committed batch.
    """
    new_ids = np.arange(len(exact), len(exact) + batch, dtype=np.int64)
    rows = np.ascontiguousarray(np.resize(fresh, (batch, fresh.shape[1])))  # repeats rows if fewer than batch
    costs = {}
    for name, index in (("exact_upsert_32_s", exact), ("ivf_upsert_32_s", ivf)):
        times = []
        for _ in range(repeats):
            t0 = time.perf_counter()
            index.upserted(new_ids, rows)
            times.append(time.perf_counter() - t0)
            gc.collect()
        costs[name] = median(times)
    return costs


def _faiss_ids(flat, q: np.ndarray) -> np.ndarray:  # noqa: ANN001
    _, rows = flat.search(q, K)
    return rows[0][rows[0] >= 0]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="10000,100000,1000000", help="index sizes, comma-separated")
    parser.add_argument("--nprobes", default="8,16,32,64,128,256,512", help="IVF nprobe values, comma-separated")
    parser.add_argument(
        "--queries", type=int, default=0, help="measured queries per size (default 300 below 1M, 100 at 1M+)"
    )
    parser.add_argument("--warmup", type=int, default=10, help="unmeasured queries per method first")
    parser.add_argument("--block", type=int, default=10, help="queries per turn when methods take turns")
    parser.add_argument("--clusters", type=int, default=1000, help="synthetic cluster count")
    parser.add_argument("--structure", type=int, default=24, help="synthetic intrinsic dimension (shared basis size)")
    parser.add_argument(
        "--spread", type=float, default=1.0, help="synthetic within-cluster spread (higher: clusters overlap)"
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--vectors", type=Path, default=None, help="real (n, 512) float32 .npy embeddings instead of synthetic"
    )
    parser.add_argument("--out", type=Path, default=None, help="write JSON results here")
    args = parser.parse_args(argv)
    sizes = [int(s) for s in args.sizes.split(",")]
    nprobes = [int(p) for p in args.nprobes.split(",")]

    import faiss

    env = environment(("numpy", "faiss"))  # at the start: the commit the code was loaded from
    env["faiss_threads"] = faiss.omp_get_max_threads()
    results: dict[str, object] = {
        "dim": DIM,
        "k": K,
        "nprobes": nprobes,
        "data": str(args.vectors) if args.vectors else "synthetic",
        "clusters": args.clusters,
        "structure": args.structure,
        "spread": args.spread,
        "seed": args.seed,
        "block": args.block,
        "sizes": {},
    }
    real = _unit(np.load(args.vectors, mmap_mode="r")) if args.vectors else None
    gen = Clustered(DIM, args.clusters, args.seed, structure=args.structure, spread=args.spread)
    for size in sizes:
        count = args.queries or (300 if size < 1_000_000 else 100)
        if real is not None:
            vectors, queries = real[: min(size, len(real) - count - args.warmup)], real[-(count + args.warmup) :]
        else:
            vectors, queries = gen.sample(size, seed=args.seed + 1), gen.sample(count + args.warmup, seed=args.seed + 2)
        rows, info = bench_size(vectors, queries, nprobes, args.warmup, args.block)
        best_exact = min(r["p50_ms"] for r in rows if str(r["method"]).startswith("exact"))  # type: ignore[type-var]
        for r in rows:
            r["speedup_vs_best_exact"] = best_exact / r["p50_ms"]  # type: ignore[operator]
        n = len(vectors)
        results["sizes"][str(n)] = {**info, "queries": count, "rows": rows}  # type: ignore[index]
        del vectors, queries
        gc.collect()
        print(
            f"\n### {n:,} vectors ({count} queries, batch 1, k={K}); "
            f"IVF nlist={info['ivf_nlist']}, build {info['ivf_build_s']:.1f} s incl. nprobe tuning {info['ivf_tune_s']:.1f} s "
            f"(1 run; auto nprobe = {info['ivf_auto_nprobe']}); "
            f"upserted(32 new) exact {info['exact_upsert_32_s'] * 1e3:.0f} ms, IVF {info['ivf_upsert_32_s'] * 1e3:.0f} ms (median of 3); "
            f"peak RSS {info['peak_rss_gib']:.1f} GiB"
        )
        print(
            markdown_table(
                ["method", "p50 ms", "p99 ms", "recall@10", "p50 speed-up vs faster exact"],
                [
                    [
                        r["method"],
                        f"{r['p50_ms']:.2f}",
                        f"{r['p99_ms']:.2f}",
                        f"{r['recall_at_10']:.3f}",
                        f"{r['speedup_vs_best_exact']:.1f}x",
                    ]
                    for r in rows
                ],
            )
        )
        sys.stdout.flush()
    results["environment"] = env
    print(f"\n{environment_line(env)}")
    write_json(args.out, results)
    return 0


if __name__ == "__main__":
    sys.exit(main())
