"""Token features of an open_clip encoder: ViT patch tokens and text token states.

The reranker reads what the library's own (frozen) encoder sees, not just its pooled
vectors: the image tokens after the vision tower's final norm (class token first, then
the patches row by row) and the text token states after the text tower's final norm.
open_clip's ``forward_intermediates`` exposes both for every architecture it builds.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    import torch

    from retrieval.models.encoder import ClipEncoder


@dataclass(frozen=True)
class TokenShape:
    """Token grid of an encoder: ``image`` tokens of width ``image_width``, ``text`` likewise."""

    image: int  # image tokens per picture (class token + patches)
    image_width: int  # channels of an image token
    text: int  # text context length
    text_width: int  # channels of a text token


@dataclass(frozen=True)
class TextTokens:
    """Text token states ``(B, L, W)`` float32 and their mask ``(B, L)`` (True = a real token)."""

    states: np.ndarray
    mask: np.ndarray


def token_shape(encoder: ClipEncoder) -> TokenShape:
    """The token grid ``encoder`` produces (one tiny forward pass of each tower)."""
    import torch

    size = encoder.image_size
    image = image_tokens(encoder, torch.zeros(1, 3, size, size))[1]
    text = text_tokens(encoder, ["a"])
    return TokenShape(image.shape[1], image.shape[2], text.states.shape[1], text.states.shape[2])


def image_tokens(encoder: ClipEncoder, pixels: torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
    """``(B, 3, H, W)`` pixels -> (unit vectors ``(B, dim)`` float32, tokens ``(B, T, W)`` float16).

    One forward pass gives both, so indexing with a token cache costs no second pass; the
    vectors equal :meth:`ClipEncoder.encode_images` (same tower, same normalisation).
    """
    import torch

    from retrieval.models.encoder import unit_rows

    with torch.inference_mode(), encoder.autocast():
        out = encoder.model.forward_intermediates(
            image=pixels.to(encoder.device, non_blocking=True),
            image_indices=1,
            normalize_intermediates=True,
            image_output_fmt="NLC",
            image_output_extra_tokens=True,
        )
    patches = out["image_intermediates"][-1]  # (B, HW, W)
    prefix = out.get("image_intermediates_prefix", [patches[:, :0]])[-1]  # (B, 1, W)
    tokens = torch.cat([prefix, patches], dim=1)  # (B, T, W)
    return unit_rows(out["image_features"]), tokens.to(torch.float16).cpu().numpy()


def text_tokens(encoder: ClipEncoder, texts: Sequence[str]) -> TextTokens:
    """Texts -> token states after the final norm, with a mask up to the end-of-text token."""
    import torch

    ids = encoder.tokenizer(list(texts)).to(encoder.device)  # (B, L)
    with torch.inference_mode(), encoder.autocast():
        out = encoder.model.forward_intermediates(
            text=ids, text_indices=1, normalize_intermediates=True, intermediates_only=True
        )
    states = out["text_intermediates"][-1].float().cpu().numpy()  # (B, L, W)
    return TextTokens(np.ascontiguousarray(states, np.float32), _text_mask(ids.cpu().numpy()))


def _text_mask(ids: np.ndarray) -> np.ndarray:
    """True up to and including the end-of-text token (the largest id in CLIP's vocabulary)."""
    length = ids.shape[1]
    end = ids.argmax(axis=1)  # (B,) end-of-text position
    return np.arange(length)[None, :] <= end[:, None]


def output_projections(encoder: ClipEncoder) -> tuple[torch.Tensor, torch.Tensor] | None:
    """The encoder's text and image output projections ``(W, E)``, or None if it has none."""
    model = encoder.model
    text = getattr(model, "text_projection", None)
    if text is None and hasattr(model, "text"):
        text = getattr(model.text, "text_projection", None)
    image = getattr(model.visual, "proj", None)
    if text is None or image is None:
        return None
    text = text.weight.T if hasattr(text, "weight") else text
    return text.detach().float().cpu(), image.detach().float().cpu()
