"""GPU exact search latency: the torch searcher (``retrieval.search.gpu_search``) at millions of vectors.

    python benchmarks/bench_gpu_search.py --sizes 1000000,10000000 --out gpu_search.json

Synthetic clustered 512-d unit vectors (1000 centres, centre + noise, as bench_query.py
with --spread 1) are made on the GPU, copied to the host as the float32 ``ExactIndex``
the library would hold, and searched through ``TorchExactIndex`` (fp16 copy on the
device, float32 rescoring on the host). Latency = wall time of one ``search`` call, host
queries in and ``Neighbors`` out, k=10, batch 1 and batch 64, after warm-up; p50/p99
over ``--queries`` calls. Recall@10 is against exact float32 search on the GPU
(TF32 off), for the searcher and for plain fp16 top-k without the rescoring step.
"""

from __future__ import annotations

import argparse
import sys
import time

import _common  # noqa: F401  (sys.path)
import numpy as np
from _common import (
    environment,
    environment_line,
    markdown_table,
    percentile,
    write_json,
)


def make_vectors(n: int, dim: int, seed: int, device: str):  # noqa: ANN201
    """``(n, dim)`` float32 unit vectors on ``device`` around 1000 centres, and 1000 fresh queries."""
    import torch

    g = torch.Generator(device=device).manual_seed(seed)
    centres = torch.nn.functional.normalize(torch.randn(1000, dim, generator=g, device=device), dim=1)

    def draw(count: int) -> torch.Tensor:
        out = torch.empty(count, dim, device=device)
        for start in range(0, count, 1 << 20):
            m = min(1 << 20, count - start)
            pick = torch.randint(0, 1000, (m,), generator=g, device=device)
            noise = torch.randn(m, dim, generator=g, device=device) * (0.6 / dim**0.5)
            out[start : start + m] = torch.nn.functional.normalize(centres[pick] + noise, dim=1)
        return out

    return draw(n), draw(1000)


def latencies(search, queries: np.ndarray, batch: int, calls: int) -> list[float]:  # noqa: ANN001
    """Seconds per call over ``calls`` calls of ``batch`` queries each (after 5 untimed)."""
    times = []
    for i in range(calls + 5):
        q = queries[(i * batch) % (len(queries) - batch) :][:batch]
        start = time.perf_counter()
        search(q)
        if i >= 5:
            times.append(time.perf_counter() - start)
    return times


def recall(found: list, truth: np.ndarray) -> float:
    return float(np.mean([len(set(f.ids.tolist()) & set(t.tolist())) / len(t) for f, t in zip(found, truth)]))


def measure(n: int, dim: int, args: argparse.Namespace) -> dict[str, object]:
    import torch

    from index.kinds.exact import ExactIndex
    from retrieval.search.gpu_search import TorchExactIndex

    start = time.perf_counter()
    dev_vectors, dev_queries = make_vectors(n, dim, n, args.device)
    host = np.empty((n, dim), np.float32)
    for s in range(0, n, 1 << 20):  # to the host in chunks: the library's float32 index
        host[s : s + (1 << 20)] = dev_vectors[s : s + (1 << 20)].cpu().numpy()
    ids = np.arange(n, dtype=np.int64)
    index = ExactIndex(dim, ids, host)
    searcher = TorchExactIndex(index, args.device, dev_vectors.half())
    queries = np.ascontiguousarray(dev_queries.cpu().numpy())
    setup_s = time.perf_counter() - start
    torch.backends.cuda.matmul.allow_tf32 = False
    truth_q = dev_queries[: args.recall_queries]
    exact = (
        torch.cat([(truth_q @ dev_vectors[s : s + (1 << 22)].T) for s in range(0, n, 1 << 22)], 1)
        .topk(10, dim=1)
        .indices.cpu()
        .numpy()
    )
    del dev_vectors
    torch.cuda.empty_cache()
    found = searcher.search(queries[: args.recall_queries], 10)
    plain = [
        type(f)(np.zeros(0), r) for f, r in zip(found, searcher._candidates(truth_q.half(), 10, None)[1].cpu().numpy())
    ]
    row: dict[str, object] = {
        "n": n,
        "dim": dim,
        "setup_s": setup_s,
        "recall_at_10": recall(found, exact),
        "recall_at_10_fp16_no_rescore": recall(plain, exact),
        "gpu_bytes": int(searcher._dev.numel() * 2),
    }
    for batch, calls in ((1, args.queries), (64, max(20, args.queries // 5))):
        t = latencies(lambda q: searcher.search(q, 10), queries, batch, calls)
        row[f"batch{batch}_ms"] = {"p50": percentile(t, 50) * 1e3, "p99": percentile(t, 99) * 1e3, "calls": calls}
        print(
            f"n={n:,} batch {batch}: p50 {row[f'batch{batch}_ms']['p50']:.2f} ms, p99 {row[f'batch{batch}_ms']['p99']:.2f} ms",
            file=sys.stderr,
            flush=True,
        )
    if n <= args.cpu_baseline_max:
        t = latencies(lambda q: index.search(q, 10), queries, 1, 10)
        row["cpu_numpy_batch1_ms_p50"] = percentile(t, 50) * 1e3
    searcher = index = host = None  # free device memory before the next size
    torch.cuda.empty_cache()
    return row


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="1000000,10000000")
    parser.add_argument("--dim", type=int, default=512)
    parser.add_argument("--queries", type=int, default=300, help="timed batch-1 calls (batch 64: a fifth)")
    parser.add_argument("--recall-queries", type=int, default=200)
    parser.add_argument(
        "--cpu-baseline-max", type=int, default=1_000_000, help="numpy ExactIndex batch-1 baseline up to this size"
    )
    parser.add_argument("--device", default="cuda", help="cuda (the benchmark); cpu only to smoke-test the script")
    parser.add_argument("--out", default=None)
    args = parser.parse_args(argv)
    import torch

    env = environment()
    env["gpu"] = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "none"
    rows = [measure(int(n), args.dim, args) for n in args.sizes.split(",")]
    write_json(args.out, {"rows": rows, "environment": env})
    table = [
        [
            f"{r['n']:,}",
            f"{r['batch1_ms']['p50']:.2f}",
            f"{r['batch1_ms']['p99']:.2f}",
            f"{r['batch64_ms']['p50']:.2f}",
            f"{r['batch64_ms']['p99']:.2f}",
            f"{r['recall_at_10']:.3f}",
            f"{r['recall_at_10_fp16_no_rescore']:.3f}",
            f"{r.get('cpu_numpy_batch1_ms_p50', float('nan')):.1f}",
        ]
        for r in rows
    ]
    print(
        markdown_table(
            [
                "vectors",
                "batch 1 p50 ms",
                "batch 1 p99 ms",
                "batch 64 p50 ms",
                "batch 64 p99 ms",
                "recall@10",
                "recall@10 fp16 only",
                "numpy CPU batch 1 p50 ms",
            ],
            table,
        )
    )
    print(f"\n{env['gpu']}; k=10, {args.dim}-d; {environment_line(env)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
