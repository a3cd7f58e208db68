"""Reranker logits of (text, image) pairs from precomputed token banks, for training and evaluation."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch

from retrieval.rerank.model import RerankerNet
from retrieval.training.corpus import ImageBank, TextBank

__all__ = ["PairScorer", "mirror_grid", "net_scorer", "pair_logits"]

PairScorer = Callable[[np.ndarray, np.ndarray], np.ndarray]  # (text rows, image rows) -> scores


def pair_logits(
    net: RerankerNet,
    texts: TextBank,
    images: ImageBank,
    text_rows: np.ndarray,
    image_rows: np.ndarray,
    flip: np.ndarray | None = None,
    mirrored: np.ndarray | None = None,
) -> torch.Tensor:
    """Reranker logits ``(P,)`` of the (text row, image row) pairs.

    ``flip (P,)`` mirrors those pairs: the image's patch-grid columns and the text's
    left/right (``mirrored`` maps a text row to its mirror's row). The dual cosine stays
    that of the unmirrored pair, which is what the dual encoder would say at search time.
    """
    device = net.bias.device
    dual = np.einsum("pd,pd->p", texts.vectors[text_rows], images.vectors[image_rows])
    tokens = images.tokens[image_rows]
    if flip is not None and mirrored is not None and flip.any():
        text_rows = np.where(flip, mirrored[text_rows], text_rows)
        tokens[flip] = mirror_grid(tokens[flip])
    return net(
        *(
            torch.from_numpy(a).to(device, non_blocking=True)
            for a in (texts.states[text_rows], texts.mask[text_rows], tokens, dual)
        )
    )


def mirror_grid(tokens: np.ndarray) -> np.ndarray:
    """``(n, 1 + S*S, W)`` -> the same with the patch grid's columns reversed (class token kept)."""
    n, t, w = tokens.shape
    side = int(round((t - 1) ** 0.5))
    grid = tokens[:, 1:].reshape(n, side, side, w)[:, :, ::-1]
    return np.concatenate([tokens[:, :1], grid.reshape(n, side * side, w)], axis=1)


def net_scorer(net: RerankerNet, texts: TextBank, images: ImageBank, batch: int = 2048) -> PairScorer:
    """Score (text row, image row) pairs with ``net`` in batches, without gradients."""

    def score(text_rows: np.ndarray, image_rows: np.ndarray) -> np.ndarray:
        out = []
        with torch.inference_mode():
            for s in range(0, len(text_rows), batch):
                out.append(
                    pair_logits(net, texts, images, text_rows[s : s + batch], image_rows[s : s + batch])
                    .float()
                    .cpu()
                    .numpy()
                )
        return np.concatenate(out) if out else np.zeros(0, np.float32)

    return score
