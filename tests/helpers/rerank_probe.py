"""The reranker tests' quick training settings and their colour-binding measure, shared with
``benchmarks/rerank_test_seeds.py`` (which repeats that measure over seeds)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

# Training settings small enough for the test suite (a 32-px, 24-line Shapes World set).
FAST = {
    "steps": 150,
    "batch_size": 12,
    "width": 32,
    "layers": 1,
    "heads": 2,
    "pool": 1,
    "lr": 3e-3,
    "warmup_steps": 5,
    "mine_k": 4,
    "hard_images": 2,
    "hard_captions": 1,
    "relation_steps": 30,
    "checkpoint_seconds": 0.0,
}


def colour_wins(net, pairs_dir: Path, encoder) -> float:  # noqa: ANN001
    """Share of (line, colour negative) pairs where the reranker scores the caption higher."""
    from retrieval.ingest.pairs import load_pairs
    from retrieval.training.pair_scores import net_scorer
    from retrieval.training.rerank_train import prepare
    from retrieval.training.shapes_world import negative_kind

    pairs = load_pairs(pairs_dir)
    data = prepare(pairs, encoder, mine_k=4)
    score = net_scorer(net, data.texts, data.images)
    wins = []
    for line, negatives in enumerate(pairs.negatives):
        image = pairs.caption_image[line]
        for negative in negatives:
            if negative_kind(pairs.captions[line], negative) == "colour":
                rows = np.array([data.texts.index[pairs.captions[line]], data.texts.index[negative]])
                pos, neg = score(rows, np.array([image, image]))
                wins.append(pos > neg)
    assert wins, "the generated set has colour negatives"
    return float(np.mean(wins))
