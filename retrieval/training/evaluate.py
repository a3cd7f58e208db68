"""Evaluate an encoder on image-caption pairs: t2i/i2t Recall@K and binding.

Captions may optionally be grouped (e.g. Shapes World one-object vs two-object scenes) so
strengths and weaknesses are reported separately instead of averaged away.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np

from retrieval.images.decode import decode_file
from retrieval.ingest.pairs import PairSet
from retrieval.models.encoder import Encoder
from retrieval.training import shapes_world
from retrieval.training.metrics import binding_wins, i2t_ranks, recall_at, t2i_ranks


@dataclass(frozen=True)
class Grouping:
    """How to split an evaluation: by caption kind, and by the kind of each negative."""

    caption_kind: Callable[[str], str]
    negative_kind: Callable[[str, str], str]


# Registry of groupings that `xmr eval --groups NAME` can apply (see list_/get_/add_grouping).
_GROUPINGS: dict[str, Grouping] = {"shapes-world": Grouping(shapes_world.caption_kind, shapes_world.negative_kind)}


def list_groupings() -> list[str]:
    """Names ``xmr eval --groups`` accepts."""
    return sorted(_GROUPINGS)


def get_grouping(name: str) -> Grouping:
    """The grouping called ``name``.

    Raises:
        ValueError: no grouping of that name (the message lists the names).
    """
    if name not in _GROUPINGS:
        raise ValueError(f"unknown grouping {name!r}; choose one of {', '.join(list_groupings())}")
    return _GROUPINGS[name]


def add_grouping(name: str, grouping: Grouping) -> None:
    """Register ``grouping`` under ``name`` (for a dataset of your own)."""
    _GROUPINGS[name] = grouping


@dataclass(frozen=True)
class PairEmbeddings:
    """Unit vectors of a pair set: images ``(m, d)``, captions ``(n, d)``, negatives per line."""

    image: np.ndarray
    text: np.ndarray
    negatives: tuple[np.ndarray, ...]  # (k_j, d) for caption j; (0, d) when it has none


Counted = Callable[[int, int], None]  # on_progress(done, total)
Staged = Callable[[str], None]  # on_stage(name)


def embed_images(
    paths: Sequence, encoder: Encoder, batch_size: int = 128, workers: int = 2, on_progress: Counted | None = None
) -> np.ndarray:
    """Decode, preprocess and encode image files in order -> ``(m, d)``; ``on_progress(done, total)`` per batch."""

    def load(path) -> object:  # noqa: ANN001
        return encoder.preprocess(decode_file(path).image)

    chunks = []
    with ThreadPoolExecutor(workers) as pool:
        for start in range(0, len(paths), batch_size):
            pixels = list(pool.map(load, paths[start : start + batch_size]))
            chunks.append(encoder.encode_images(encoder.stack(pixels)))
            if on_progress:
                on_progress(start + len(pixels), len(paths))
    return np.concatenate(chunks) if chunks else np.zeros((0, encoder.dim), np.float32)


def embed_texts(
    texts: Sequence[str], encoder: Encoder, batch_size: int = 256, on_progress: Counted | None = None
) -> np.ndarray:
    """Encode texts in batches -> ``(n, d)``; ``on_progress(done, total)`` per batch."""
    chunks = []
    for start in range(0, len(texts), batch_size):
        chunks.append(encoder.encode_texts(texts[start : start + batch_size]))
        if on_progress:
            on_progress(min(start + batch_size, len(texts)), len(texts))
    return np.concatenate(chunks) if chunks else np.zeros((0, encoder.dim), np.float32)


def embed_pairs(
    pairs: PairSet,
    encoder: Encoder,
    batch_size: int = 128,
    on_stage: Staged | None = None,
    on_progress: Counted | None = None,
) -> PairEmbeddings:
    """Embed every image once, every caption, and each distinct negative once.

    ``on_stage`` names each part as it starts ("embedding images", "embedding captions",
    "embedding negatives"); ``on_progress(done, total)`` counts within it.
    """
    stage = on_stage or (lambda name: None)
    stage("embedding images")
    image = embed_images(pairs.images, encoder, batch_size, on_progress=on_progress)
    stage("embedding captions")
    text = embed_texts(pairs.captions, encoder, on_progress=on_progress)
    distinct = sorted({n for negs in pairs.negatives for n in negs})
    if distinct:
        stage("embedding negatives")
    table = dict(zip(distinct, embed_texts(distinct, encoder, on_progress=on_progress))) if distinct else {}
    empty = np.zeros((0, encoder.dim), np.float32)
    negatives = tuple(np.stack([table[n] for n in negs]) if negs else empty for negs in pairs.negatives)
    return PairEmbeddings(image, text, negatives)


@dataclass(frozen=True)
class PairScores:
    """What every metric is computed from, whoever scored the pairs (dual encoder or reranker)."""

    t2i: np.ndarray  # (n,) 1-based rank of each caption's image among all images
    i2t: np.ndarray  # (m,) 1-based rank of each image's best own caption among all captions
    positive: np.ndarray  # (n,) score of each line's caption for its image
    negatives: tuple[np.ndarray, ...]  # (k_j,) scores of line j's negatives for its image


def dual_scores(pairs: PairSet, emb: PairEmbeddings) -> PairScores:
    """Ranks and binding scores of the dual encoder alone (cosine similarity)."""
    owners = np.asarray(pairs.caption_image)
    return PairScores(
        t2i=t2i_ranks(emb.text, emb.image, owners),
        i2t=i2t_ranks(emb.text, emb.image, owners),
        positive=np.einsum("nd,nd->n", emb.text, emb.image[owners]),
        negatives=tuple(emb.negatives[j] @ emb.image[owners[j]] for j in range(len(pairs))),
    )


def metrics(pairs: PairSet, scores: PairScores, captions: Sequence[int] | None = None) -> dict[str, object]:
    """The ``xmr eval --json`` object for all captions, or for the caption indices given.

    t2i ranks each chosen caption against all images; i2t ranks each image that has a
    chosen caption against all captions; binding covers chosen lines with negatives.
    """
    chosen = np.arange(len(pairs)) if captions is None else np.asarray(captions, dtype=np.int64)
    owners = np.asarray(pairs.caption_image)
    images = np.unique(owners[chosen])
    result: dict[str, object] = {
        "count": int(len(chosen)),
        "images": int(len(images)),
        "t2i": recall_at(scores.t2i[chosen]),
        "i2t": recall_at(scores.i2t[images]),
    }
    lines = [j for j in chosen if len(pairs.negatives[j])]
    if lines:
        wins = binding_wins(scores.positive[lines], [scores.negatives[j] for j in lines])
        result["binding"] = float(np.mean(wins))
    return result


def evaluate(
    pairs: PairSet,
    encoder: Encoder,
    grouping: str | None = None,
    on_stage: Staged | None = None,
    on_progress: Counted | None = None,
) -> dict[str, object]:
    """Embed ``pairs`` with ``encoder`` and compute metrics (plus per-group metrics); see
    :func:`embed_pairs` for ``on_stage`` and ``on_progress``."""
    embeddings = embed_pairs(pairs, encoder, on_stage=on_stage, on_progress=on_progress)
    return report(pairs, dual_scores(pairs, embeddings), grouping)


def report(pairs: PairSet, scores: PairScores, grouping: str | None = None) -> dict[str, object]:
    """Metrics of all pairs, plus per-group metrics and binding by kind of negative."""
    result = metrics(pairs, scores)
    if grouping:
        result["groups"] = grouped_metrics(pairs, scores, get_grouping(grouping).caption_kind)
        if pairs.has_negatives:
            result["binding_by_negative"] = binding_by_negative(pairs, scores, get_grouping(grouping).negative_kind)
    return result


def binding_by_negative(pairs: PairSet, scores: PairScores, kind_of: Callable[[str, str], str]) -> dict[str, float]:
    """Per kind of negative: the share of (line, negative) pairs the caption wins strictly."""
    wins: dict[str, list[bool]] = {}
    for j, negatives in enumerate(pairs.negatives):
        positive = float(scores.positive[j])
        for negative, score in zip(negatives, scores.negatives[j]):
            wins.setdefault(kind_of(pairs.captions[j], negative), []).append(positive > float(score))
    return {kind: float(np.mean(flags)) for kind, flags in sorted(wins.items())}


def grouped_metrics(pairs: PairSet, scores: PairScores, kind_of: Callable[[str], str]) -> dict[str, object]:
    """Metrics per caption group, each group's captions still ranked against everything."""
    groups: dict[str, list[int]] = {}
    for j, caption in enumerate(pairs.captions):
        groups.setdefault(kind_of(caption), []).append(j)
    return {name: metrics(pairs, scores, members) for name, members in sorted(groups.items())}
