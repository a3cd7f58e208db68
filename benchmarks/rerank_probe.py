"""Pairwise-contrast probe for the reranker head (benchmarks/README.md, "Session 4").

Trains a fresh head (RerankTrainConfig's architecture) on one contrast only: a line's caption
against one of its own negatives of the chosen kinds (relation, colour, shape), on the same
image, cross-entropy over the two, with the trainer's AdamW, gradient clipping 1.0 and a
constant learning rate (after an optional linear warm-up). Every ``--every`` steps it prints
the share of test lines whose caption beats each kind of negative. This is how the session-4
table was measured: whether a head can learn relations or colour-shape binding from the
frozen tokens at all, apart from the retrieval loss.

    .venv/bin/python benchmarks/rerank_probe.py --encoder OUT/encoder --train OUT/train \\
        --test OUT/test --kinds relation --steps 1500 --seed 0 --out /tmp/probe.json

CPU: about 0.14 s per step (128 lines) for the recipe's encoder, after ~90 s of features.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import time
from pathlib import Path

import _common  # noqa: F401  (sets sys.path before the library imports)
import numpy as np
import torch
import torch.nn.functional as F

from retrieval.ingest.pairs import PairSet, load_pairs
from retrieval.models.encoder import load_encoder
from retrieval.models.specs import ModelSpec
from retrieval.training.corpus import (
    TextBank,
    encode_image_bank,
    encode_text_bank,
    pair_texts,
)
from retrieval.training.rerank_eval import net_scorer
from retrieval.training.rerank_train import (
    RerankTrainConfig,
    _optimizer,
    build_net,
    pair_logits,
)
from retrieval.training.shapes_world import negative_kind as shapes_world_negative_kind

KINDS = ("relation", "colour", "shape")


def contrast_rows(pairs: PairSet, texts: TextBank, kinds: set[str]) -> np.ndarray:
    """``(n, 3)`` rows (caption row, negative row, image) for every own negative of ``kinds``."""
    rows = [
        (texts.index[pairs.captions[j]], texts.index[neg], pairs.caption_image[j])
        for j, negs in enumerate(pairs.negatives)
        for neg in negs
        if shapes_world_negative_kind(pairs.captions[j], neg) in kinds
    ]
    return np.array(rows, dtype=np.int64).reshape(-1, 3)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--encoder", type=Path, required=True)
    parser.add_argument("--train", type=Path, required=True)
    parser.add_argument("--test", type=Path, required=True)
    parser.add_argument(
        "--kinds", default="relation", help="negatives trained on, comma-separated: relation, colour, shape"
    )
    parser.add_argument("--steps", type=int, default=1500)
    parser.add_argument("--batch", type=int, default=128, help="lines per step")
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--warmup", type=int, default=0, help="linear lr warm-up steps (0: constant lr from the start)")
    parser.add_argument("--seed", type=int, default=0, help="initial weights and line order")
    parser.add_argument("--every", type=int, default=250, help="evaluate every this many steps")
    parser.add_argument(
        "--cfg", default="{}", help='RerankTrainConfig overrides as JSON, e.g. {"pool": 1, "fusion": "single-stream"}'
    )
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    unknown = set(args.kinds.split(",")) - set(KINDS)
    if unknown:
        parser.error(f"--kinds: unknown {', '.join(sorted(unknown))}; choose from {', '.join(KINDS)}")

    start = time.time()
    encoder = load_encoder(ModelSpec(str(args.encoder), ""), args.device)
    train, test = load_pairs(args.train), load_pairs(args.test)
    images, texts = encode_image_bank(encoder, train.images), encode_text_bank(encoder, pair_texts(train))
    test_images, test_texts = encode_image_bank(encoder, test.images), encode_text_bank(encoder, pair_texts(test))
    print(f"features {time.time() - start:.0f} s", file=sys.stderr, flush=True)

    pool = contrast_rows(train, texts, set(args.kinds.split(",")))
    if not len(pool):
        sys.exit(
            f"{args.train} has no negatives of kind {args.kinds}: the probe needs Shapes World pairs with negatives"
        )
    held_out = {kind: contrast_rows(test, test_texts, {kind}) for kind in KINDS}
    config = dataclasses.replace(RerankTrainConfig(checkpoint_seconds=1e9), **json.loads(args.cfg))
    torch.manual_seed(args.seed)
    net = build_net(config, encoder).to(args.device)
    optimizer = _optimizer(net, dataclasses.replace(config, lr=args.lr))
    rng = np.random.default_rng(args.seed)
    wins: list[float] = []
    trace = []
    began = time.time()
    for step in range(args.steps):
        for group in optimizer.param_groups:
            group["lr"] = args.lr * min(1.0, (step + 1) / args.warmup) if args.warmup else args.lr
        batch = pool[rng.integers(0, len(pool), args.batch)]
        logits = (
            pair_logits(
                net,
                texts,
                images,
                np.concatenate([batch[:, 0], batch[:, 1]]),
                np.concatenate([batch[:, 2], batch[:, 2]]),
            )
            .view(2, -1)
            .T
        )
        loss = F.cross_entropy(logits, torch.zeros(len(batch), dtype=torch.long, device=logits.device))
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(net.parameters(), 1.0)
        optimizer.step()
        wins.append(float((logits[:, 0] > logits[:, 1]).float().mean()))
        if (step + 1) % args.every == 0 or step + 1 == args.steps:
            net.eval()
            score = net_scorer(net, test_texts, test_images)
            accuracy = {
                kind: round(float(np.mean(score(r[:, 0], r[:, 2]) > score(r[:, 1], r[:, 2]))), 3)
                for kind, r in held_out.items()
                if len(r)
            }
            net.train()
            row = {
                "step": step + 1,
                "train": round(float(np.mean(wins[-args.every :])), 3),
                "test": accuracy,
                "seconds": round(time.time() - began, 1),
            }
            trace.append(row)
            print(json.dumps(row), flush=True)
    if args.out:
        args.out.write_text(json.dumps({"args": {k: str(v) for k, v in vars(args).items()}, "trace": trace}, indent=2))


if __name__ == "__main__":
    main()
