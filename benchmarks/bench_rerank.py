"""Latency that reranking adds to a text query, with and without the token cache.

Indexes a Shapes World split twice with the given encoder (once with --cache-tokens),
then for each K times ``search(text, reranker=R, rerank_k=K)`` against the dual search of
the same K (median over queries and repeats); the difference is the added latency. With
no --reranker a freshly initialised default reranker is used: latency does not depend
on the weights. Also reports the token cache's bytes per image.

    .venv/bin/python benchmarks/bench_rerank.py --encoder OUT/encoder --pairs OUT/test --ks 20,50,100
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from _common import environment, environment_line, markdown_table, median, write_json


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--encoder", required=True, help="encoder (any --model value)")
    parser.add_argument(
        "--pairs", type=Path, required=True, help="pairs folder whose images are indexed and captions queried"
    )
    parser.add_argument("--reranker", default="", help="reranker folder (default: a fresh default reranker)")
    parser.add_argument("--ks", default="20,50,100")
    parser.add_argument("--queries", type=int, default=20)
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    parser.add_argument("--out", default=None)
    args = parser.parse_args()

    import torch

    from index.tokens import TokenCache
    from retrieval import Library
    from retrieval.ingest.pairs import load_pairs
    from retrieval.rerank.model import save_reranker
    from retrieval.training.rerank_train import RerankTrainConfig, build_net

    if args.threads:
        torch.set_num_threads(args.threads)
    env = environment()
    pairs = load_pairs(args.pairs)
    queries = list(dict.fromkeys(pairs.captions))[: args.queries]
    work = Path(tempfile.mkdtemp(prefix="xmr-bench-rerank-"))
    rows, out = [], {"env": env, "results": []}
    libs = {}
    for mode in ("cache", "no cache"):
        lib = Library.open(work / mode.replace(" ", "-"), model=args.encoder, device="cpu")
        lib.index([args.pairs / "images"], cache_tokens=mode == "cache")
        libs[mode] = lib
    folder = args.reranker
    if not folder:
        folder = str(work / "reranker")
        lib = libs["cache"]
        save_reranker(
            Path(folder), build_net(RerankTrainConfig(), lib.encoder), lib.identity, {"note": "untrained: latency only"}
        )
    cache = TokenCache.open(libs["cache"].layout.root)
    per_image = cache.size_bytes() / max(1, len(cache))
    for k in (int(x) for x in args.ks.split(",")):
        for mode, lib in libs.items():
            reranker = lib.load_reranker(folder)
            lib.search(queries[0], k=10, reranker=reranker, rerank_k=k)  # warm-up
            dual, reranked = [], []
            for q in queries:
                t = time.perf_counter()
                lib.search(q, k=k)
                dual.append(time.perf_counter() - t)
                t = time.perf_counter()
                lib.search(q, k=10, reranker=reranker, rerank_k=k)
                reranked.append(time.perf_counter() - t)
            added = median([r - d for r, d in zip(reranked, dual)]) * 1000
            row = {
                "k": k,
                "mode": mode,
                "dual_ms": median(dual) * 1000,
                "reranked_ms": median(reranked) * 1000,
                "added_ms": added,
            }
            out["results"].append(row)
            rows.append([k, mode, f"{row['dual_ms']:.1f}", f"{row['reranked_ms']:.1f}", f"{added:.1f}"])
    out["token_cache_bytes_per_image"] = per_image
    print(environment_line(env))
    print(f"token cache: {per_image:.0f} bytes per image ({len(cache)} images)")
    print(markdown_table(["K", "tokens from", "dual search ms", "with reranking ms", "added ms (median)"], rows))
    write_json(args.out, out)


if __name__ == "__main__":
    main()
