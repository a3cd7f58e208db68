"""Retrieval metrics over embeddings, computed in chunks (25k captions x 5k images fit).

Definitions (../shared/shapes-world.md): t2i Recall@K: each caption queries all images;
i2t Recall@K: each image queries all captions, a hit is any caption of that image;
binding: the share of lines whose image scores its caption strictly above every one of
its negatives. A rank counts the items scored strictly higher, so ties favour the gold.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

KS = (1, 5, 10)


def t2i_ranks(
    text: np.ndarray, image: np.ndarray, caption_image: Sequence[int] | np.ndarray, chunk: int = 1024
) -> np.ndarray:
    """1-based rank of each caption's image among all images; ``text (n, d)``, ``image (m, d)``."""
    owners = np.asarray(caption_image)
    ranks = np.empty(len(text), dtype=np.int64)
    for start in range(0, len(text), chunk):
        scores = text[start : start + chunk] @ image.T  # (c, m)
        gold = scores[np.arange(len(scores)), owners[start : start + chunk]]
        ranks[start : start + chunk] = 1 + (scores > gold[:, None]).sum(axis=1)
    return ranks


def i2t_ranks(
    text: np.ndarray, image: np.ndarray, caption_image: Sequence[int] | np.ndarray, chunk: int = 256
) -> np.ndarray:
    """1-based rank of each image's best-scored own caption among all captions."""
    owners = np.asarray(caption_image)
    ranks = np.empty(len(image), dtype=np.int64)
    for start in range(0, len(image), chunk):
        scores = image[start : start + chunk] @ text.T  # (c, n)
        rows = np.arange(start, start + len(scores))
        own = owners[None, :] == rows[:, None]  # (c, n): caption belongs to the image
        gold = np.where(own, scores, -np.inf).max(axis=1)
        ranks[start : start + chunk] = 1 + (scores > gold[:, None]).sum(axis=1)
    return ranks


def recall_at(ranks: np.ndarray, ks: Sequence[int] = KS) -> dict[str, float]:
    """``{"R@1": .., "R@5": .., "R@10": ..}`` from 1-based ranks."""
    return {f"R@{k}": float(np.mean(ranks <= k)) if len(ranks) else 0.0 for k in ks}


def binding_wins(positive: np.ndarray, negatives: Sequence[np.ndarray]) -> np.ndarray:
    """Per line: True when the positive score beats every negative score strictly.

    ``positive (n,)`` image-caption scores; ``negatives[j] (k_j,)`` image-negative scores.
    Lines without negatives are False and should be left out by the caller.
    """
    return np.array([len(neg) > 0 and bool(pos > np.max(neg)) for pos, neg in zip(positive, negatives)])
