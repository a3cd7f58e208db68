"""Token features of a whole pair set, computed once with the frozen encoder.

Training and evaluating a reranker both need every image's tokens and every distinct
text's token states; with a frozen encoder they never change, so they are computed once
and kept in memory (float16 image tokens: ``T * W * 2`` bytes per image).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np

from retrieval.images.decode import decode_file
from retrieval.ingest.pairs import PairSet
from retrieval.models.encoder import ClipEncoder
from retrieval.models.features import image_tokens, text_tokens


@dataclass(frozen=True)
class TextBank:
    """Distinct texts with their unit vectors ``(n, d)``, token states ``(n, L, W)`` and masks."""

    texts: tuple[str, ...]
    index: dict[str, int]  # text -> row
    vectors: np.ndarray
    states: np.ndarray
    mask: np.ndarray


@dataclass(frozen=True)
class ImageBank:
    """Images in pair-set order: unit vectors ``(m, d)`` float32 and tokens ``(m, T, W)`` float16."""

    vectors: np.ndarray
    tokens: np.ndarray


def encode_text_bank(encoder: ClipEncoder, texts: Sequence[str], batch_size: int = 512) -> TextBank:
    """Vectors and token states of the distinct ``texts`` (order kept, repeats dropped)."""
    distinct = tuple(dict.fromkeys(texts))
    vectors, states, masks = [], [], []
    for start in range(0, len(distinct), batch_size):
        chunk = distinct[start : start + batch_size]
        vectors.append(encoder.encode_texts(chunk))
        tokens = text_tokens(encoder, chunk)
        states.append(tokens.states.astype(np.float16))
        masks.append(tokens.mask)
    return TextBank(
        distinct,
        {t: i for i, t in enumerate(distinct)},
        np.concatenate(vectors),
        np.concatenate(states),
        np.concatenate(masks),
    )


def encode_image_bank(
    encoder: ClipEncoder,
    paths: Sequence,
    batch_size: int = 256,
    workers: int = 2,
    on_batch: Callable[[int], None] | None = None,
) -> ImageBank:
    """Decode, preprocess and encode image files in order (vectors and tokens in one pass)."""
    import torch

    def load(path) -> torch.Tensor:  # noqa: ANN001
        return encoder.preprocess(decode_file(path).image)

    vectors, tokens = [], []
    with ThreadPoolExecutor(workers) as pool:
        for start in range(0, len(paths), batch_size):
            pixels = torch.stack(list(pool.map(load, paths[start : start + batch_size])))
            v, t = image_tokens(encoder, pixels)
            vectors.append(v)
            tokens.append(t)
            if on_batch:
                on_batch(len(pixels))
    return ImageBank(np.concatenate(vectors), np.concatenate(tokens))


def pair_texts(pairs: PairSet) -> list[str]:
    """Every caption and negative of a pair set (with repeats; the bank drops them)."""
    return [*pairs.captions, *(n for negs in pairs.negatives for n in negs)]
