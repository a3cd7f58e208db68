"""Evaluation with reranking: the dual encoder's top-K of every query rescored by a reranker.

Gives the same :class:`retrieval.training.evaluate.PairScores` as the dual encoder alone, so
``xmr eval --reranker`` reports exactly the metrics of ``xmr eval``. A gold item outside
the dual top-K keeps its dual rank (reranking only reorders the top-K); binding compares
the reranker's scores of each line's caption and negatives for its image.
"""

from __future__ import annotations

import numpy as np

from retrieval.ingest.pairs import PairSet
from retrieval.training.corpus import ImageBank, TextBank
from retrieval.training.evaluate import PairScores
from retrieval.training.metrics import i2t_ranks, t2i_ranks
from retrieval.training.pair_scores import PairScorer, net_scorer


def reranked_scores(pairs: PairSet, texts: TextBank, images: ImageBank, score: PairScorer, k: int) -> PairScores:
    """Rerank each caption's top-``k`` images and each image's top-``k`` captions."""
    owners = np.asarray(pairs.caption_image)
    rows = np.array([texts.index[c] for c in pairs.captions])  # (n,) text-bank row per line
    text = texts.vectors[rows]  # (n, d)
    k = max(1, min(k, len(pairs.images), len(pairs)))
    t2i = t2i_ranks(text, images.vectors, owners)
    top = _top(text @ images.vectors.T, k)  # (n, k) images
    logits = score(np.repeat(rows, k), top.ravel()).reshape(top.shape)
    t2i = _rerank(t2i, logits, top == owners[:, None])
    i2t = i2t_ranks(text, images.vectors, owners)
    top = _top(images.vectors @ text.T, k)  # (m, k) caption lines
    logits = score(rows[top].ravel(), np.repeat(np.arange(len(pairs.images)), k)).reshape(top.shape)
    i2t = _rerank(i2t, logits, owners[top] == np.arange(len(pairs.images))[:, None])
    positive = score(rows, owners)
    neg_rows = [texts.index[t] for negs in pairs.negatives for t in negs]
    neg_images = [owners[j] for j, negs in enumerate(pairs.negatives) for _ in negs]
    flat = score(np.array(neg_rows, dtype=np.int64), np.array(neg_images, dtype=np.int64))
    bounds = np.cumsum([0, *(len(negs) for negs in pairs.negatives)])
    negatives = tuple(flat[bounds[j] : bounds[j + 1]] for j in range(len(pairs)))
    return PairScores(t2i, i2t, positive, negatives)


def _top(scores: np.ndarray, k: int) -> np.ndarray:
    """Column indices of each row's ``k`` highest scores (any order)."""
    return np.argpartition(-scores, k - 1, axis=1)[:, :k]


def _rerank(dual_ranks: np.ndarray, logits: np.ndarray, gold: np.ndarray) -> np.ndarray:
    """New 1-based ranks: within the top-K by reranker logit (best gold counts), else the dual rank."""
    best_gold = np.where(gold, logits, -np.inf).max(axis=1)  # (q,)
    inside = gold.any(axis=1)
    reranked = 1 + (logits > best_gold[:, None]).sum(axis=1)
    return np.where(inside, reranked, dual_ranks)


def evaluate_reranked(
    pairs: PairSet, encoder, reranker: str, k: int, grouping: str | None = None, device: str = "auto"
) -> dict[str, object]:  # noqa: ANN001
    """``xmr eval --reranker``: the metrics of :func:`retrieval.training.evaluate.evaluate` after
    reranking each query's dual top-``k`` with ``reranker`` (a trained folder or ``blip:NAME``).

    Raises:
        RerankerError, RerankerMismatchError: the reranker cannot be used with ``encoder``.
    """
    from retrieval.rerank.load import BLIP_PREFIX
    from retrieval.rerank.model import load_reranker
    from retrieval.training.corpus import (
        encode_image_bank,
        encode_text_bank,
        pair_texts,
    )
    from retrieval.training.evaluate import report

    images = encode_image_bank(encoder, pairs.images)
    texts = encode_text_bank(encoder, pair_texts(pairs))
    if reranker.startswith(BLIP_PREFIX):
        from retrieval.rerank.blip import load_blip_reranker

        score = protocol_scorer(
            load_blip_reranker(reranker[len(BLIP_PREFIX) :], device), texts, images, [str(p) for p in pairs.images]
        )
    else:
        score = net_scorer(load_reranker(reranker, encoder.identity).net, texts, images)
    result = report(pairs, reranked_scores(pairs, texts, images, score, k), grouping)
    result["reranker"] = {"name": reranker, "rerank_k": k}
    return result


def protocol_scorer(reranker, texts: TextBank, images: ImageBank, paths: list[str]) -> PairScorer:  # noqa: ANN001
    """Score pairs through the :class:`Reranker` protocol (any backend), one call per text."""
    from retrieval.rerank.base import ImageRef

    def score(text_rows: np.ndarray, image_rows: np.ndarray) -> np.ndarray:
        out = np.zeros(len(text_rows), np.float32)
        for row in np.unique(text_rows):
            at = np.flatnonzero(text_rows == row)
            refs = [ImageRef(path=paths[i]) for i in image_rows[at]]
            dual = images.vectors[image_rows[at]] @ texts.vectors[row]
            out[at] = reranker.rerank_images(texts.texts[row], refs, dual)
        return out

    return score
