"""Hard negatives mined from the dual encoder's own confusions.

A reranker only ever sees the dual encoder's top-K, so it must learn to separate the true
match from exactly the candidates the dual encoder ranks next to it. For each caption we
keep the highest-scoring images that are not its image (nor another rendering of an
equivalent caption), and for each image the highest-scoring captions that are not true
for it. Equivalence is by a caption key (Shapes World: "X right of Y" == "Y left of X").
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from retrieval.ingest.pairs import PairSet


@dataclass(frozen=True)
class Confusions:
    """Per caption line: image indices ``(n, k)``; per image: caption-bank rows ``(m, k)``.

    Entries are -1 where fewer than ``k`` confusions exist.
    """

    images: np.ndarray  # hard image negatives of each caption line
    captions: np.ndarray  # hard caption negatives (rows of ``texts``) of each image
    texts: tuple[str, ...]  # the distinct captions mined from


def mine(
    pairs: PairSet,
    image_vectors: np.ndarray,
    caption_vectors: np.ndarray,
    key: Callable[[str], str],
    k: int = 16,
    chunk: int = 512,
) -> Confusions:
    """Top-``k`` dual-encoder confusions in both directions.

    Args:
        pairs: the training pairs.
        image_vectors: ``(m, d)`` unit vectors of ``pairs.images``.
        caption_vectors: ``(n, d)`` unit vectors of ``pairs.captions`` (one per line).
        key: maps a caption to its equivalence key (captions with one key describe one scene).
    """
    keys = [key(c) for c in pairs.captions]
    distinct = list(dict.fromkeys(keys))
    code = {kk: i for i, kk in enumerate(distinct)}
    line_code = np.array([code[kk] for kk in keys])  # (n,)
    image_codes: list[set[int]] = [set() for _ in pairs.images]
    for line, image in enumerate(pairs.caption_image):
        image_codes[image].add(int(line_code[line]))
    # One representative caption (text and vector) per key.
    first_line = {c: line for line, c in reversed(list(enumerate(line_code.tolist())))}
    key_rows = np.array([first_line[i] for i in range(len(distinct))])
    key_vectors = caption_vectors[key_rows]  # (K, d)
    true_pairs = np.zeros((len(distinct), len(pairs.images)), dtype=bool)
    for image, codes in enumerate(image_codes):
        true_pairs[list(codes), image] = True
    per_key = _top_false(key_vectors, image_vectors, true_pairs, k, chunk)  # (K, k) images
    per_image = _top_false(image_vectors, key_vectors, true_pairs.T, k, chunk)  # (m, k) keys
    texts = tuple(pairs.captions[r] for r in key_rows)
    return Confusions(images=per_key[line_code], captions=per_image, texts=texts)


def _top_false(queries: np.ndarray, items: np.ndarray, true: np.ndarray, k: int, chunk: int) -> np.ndarray:
    """For each query, the ``k`` best-scoring items that are not marked true (-1 pads)."""
    k_eff = min(k, items.shape[0])
    out = np.full((queries.shape[0], k), -1, dtype=np.int64)
    for start in range(0, queries.shape[0], chunk):
        scores = queries[start : start + chunk] @ items.T  # (c, items)
        scores[true[start : start + chunk]] = -np.inf
        top = np.argpartition(-scores, k_eff - 1, axis=1)[:, :k_eff]
        order = np.take_along_axis(scores, top, axis=1).argsort(axis=1)[:, ::-1]
        top = np.take_along_axis(top, order, axis=1)
        valid = np.isfinite(np.take_along_axis(scores, top, axis=1))
        out[start : start + chunk, :k_eff] = np.where(valid, top, -1)
    return out
