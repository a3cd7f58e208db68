"""Fusion heads: interchangeable ways to read a (text, image) pair of token sequences.

Every head takes projected text tokens ``(B, L, D)`` with their mask ``(B, L)`` and image
tokens ``(B, T, D)`` (class token first) and returns one matching logit per pair ``(B,)``.
A head class with ``reads_positions = False`` (it pools before it fuses) gets position
embeddings that start at zero instead of sine-cosine codes.
The registry maps a name to a constructor so configs, the CLI and tests pick heads by name:

- ``cross-attention``: bidirectional co-attention (text attends to image, image to
  text), stacked ``layers`` deep (multi-hop), then a matching MLP. The default.
- ``attention-pool``: unidirectional; the text attends over the image tokens.
- ``single-stream``: both sequences concatenated with modality embeddings through one
  transformer encoder (UNITER/VisualBERT style); a classification token comes out.
- ``bilinear``: low-rank bilinear pooling of the pooled text and image features.
- ``concat``: an MLP over the concatenated pooled features (early-fusion baseline).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn


@dataclass(frozen=True)
class HeadConfig:
    """Size of a fusion head."""

    width: int = 128  # channels D inside the head
    layers: int = 2  # stacked fusion layers (hops) where the head has layers
    heads: int = 4  # attention heads
    rank: int = 256  # bilinear rank (bilinear head only)
    dropout: float = 0.0  # dropout inside attention and MLPs
    spatial: bool = True  # add a SpatialReadout (token-sequence heads); rerankers saved before it have False


def pooled_text(text: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """The state at each text's last real token (the end-of-text token) ``(B, D)``."""
    last = mask.long().sum(dim=1).clamp(min=1) - 1  # (B,)
    return text[torch.arange(text.shape[0], device=text.device), last]


def _mlp(width: int, inputs: int, dropout: float) -> nn.Sequential:
    return nn.Sequential(nn.Linear(inputs, width), nn.GELU(), nn.Dropout(dropout), nn.Linear(width, 1))


class _Attend(nn.Module):
    """Pre-norm multi-head attention of ``query`` tokens over ``context`` tokens, added back."""

    def __init__(self, config: HeadConfig) -> None:
        super().__init__()
        self.heads = config.heads
        self.dropout = config.dropout
        self.norm_q = nn.LayerNorm(config.width)
        self.norm_kv = nn.LayerNorm(config.width)
        self.q = nn.Linear(config.width, config.width)
        self.kv = nn.Linear(config.width, 2 * config.width)
        self.out = nn.Linear(config.width, config.width)

    @torch.no_grad()
    def match_identity(self) -> None:
        """Start with queries and keys unchanged, so attention follows similarity in the input space."""
        d = self.q.weight.shape[0]
        self.q.weight.copy_(torch.eye(d))
        self.kv.weight[:d].copy_(torch.eye(d))
        self.q.bias.zero_()
        self.kv.bias[:d].zero_()

    def forward(
        self, query: torch.Tensor, context: torch.Tensor, context_pad: torch.Tensor | None = None
    ) -> torch.Tensor:
        b, lq, d = query.shape
        h = self.heads
        q = self.q(self.norm_q(query)).view(b, lq, h, d // h).transpose(1, 2)  # (B, h, Lq, d/h)
        k, v = self.kv(self.norm_kv(context)).view(b, -1, 2, h, d // h).permute(2, 0, 3, 1, 4)  # (B, h, Lk, d/h) each
        keep = None if context_pad is None else (~context_pad)[:, None, None, :]  # (B, 1, 1, Lk)
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=keep, dropout_p=self.dropout if self.training else 0.0)
        return query + self.out(out.transpose(1, 2).reshape(b, lq, d))


class SpatialReadout(nn.Module):
    """Where each text token looks in the image, read out directly into the logit.

    Each text token attends (one head) over the patch grid; the attention-weighted mean of
    the patches' coordinates (x, y in [-1, 1]) is dotted with a direction the token's own
    state proposes, and the sum over the text's tokens is added to the matching logit:
    ``sum_i w(t_i) . E_{a_i}[xy]``. A spatial relation then needs two simple things learnt
    together (where a phrase is, which way its words point) instead of a chain through
    attention, MLPs and the pooled token, which the heads alone escaped only by chance
    (benchmarks/README.md, sessions 4 and 5). Not a square patch grid: contributes zero.

    ``scale`` (a saved buffer, not trained) multiplies the readout. Training sets it after
    the last step from ranking on training lines (``calibrate_spatial`` in
    retrieval.training.rerank_train): trained to tell a caption from its reversal, the readout grows
    large enough to drown the content scores when one caption is ranked against many images.
    """

    scale: torch.Tensor  # a registered buffer (see above)

    def __init__(self, width: int) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(width)
        self.query = nn.Linear(width, width)
        self.key = nn.Linear(width, width)
        self.direction = nn.Linear(width, 2)
        self.register_buffer("scale", torch.ones(()))

    def forward(self, text: torch.Tensor, mask: torch.Tensor, patches: torch.Tensor) -> torch.Tensor:
        """``text (B, L, D)`` (normed), ``mask (B, L)``, ``patches (B, S*S, D)`` row by row -> ``(B,)``."""
        side = int(round(patches.shape[1] ** 0.5))
        if side < 2 or side * side != patches.shape[1]:
            return text.new_zeros(text.shape[0])
        line = torch.linspace(-1.0, 1.0, side, device=text.device, dtype=text.dtype)
        coords = torch.stack([line.repeat(side), line.repeat_interleave(side)], dim=1)  # (S*S, 2): x varies fastest
        scores = self.query(text) @ self.key(self.norm(patches)).transpose(1, 2) / text.shape[-1] ** 0.5  # (B, L, S*S)
        where = scores.softmax(dim=-1) @ coords  # (B, L, 2)
        return self.scale * ((self.direction(text) * where).sum(dim=-1) * mask).sum(dim=-1)


class _FeedForward(nn.Module):
    def __init__(self, config: HeadConfig) -> None:
        super().__init__()
        self.net = nn.Sequential(
            nn.LayerNorm(config.width),
            nn.Linear(config.width, 4 * config.width),
            nn.GELU(),
            nn.Dropout(config.dropout),
            nn.Linear(4 * config.width, config.width),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.net(x)


class CoAttentionLayer(nn.Module):
    """One hop: text self-attention, text->image and image->text cross-attention, MLPs."""

    def __init__(self, config: HeadConfig, bidirectional: bool = True) -> None:
        super().__init__()
        self.text_self = _Attend(config)
        self.text_cross = _Attend(config)
        self.text_ff = _FeedForward(config)
        self.image_cross = _Attend(config) if bidirectional else None
        self.image_ff = _FeedForward(config) if bidirectional else None

    def forward(self, text: torch.Tensor, pad: torch.Tensor, image: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        text = self.text_self(text, text, pad)
        attended = self.text_cross(text, image)  # text reads the image
        if self.image_cross is not None and self.image_ff is not None:  # both or neither (bidirectional)
            image = self.image_ff(self.image_cross(image, text, pad))  # image reads the text
        return self.text_ff(attended), image


class CrossAttentionHead(nn.Module):
    """Bidirectional (or, with ``bidirectional=False``, text-only) stacked cross-attention."""

    def __init__(self, config: HeadConfig, bidirectional: bool = True) -> None:
        super().__init__()
        self.layers = nn.ModuleList(CoAttentionLayer(config, bidirectional) for _ in range(config.layers))
        self.bidirectional = bidirectional
        self.norm = nn.LayerNorm(config.width)
        self.match = _mlp(config.width, (2 if bidirectional else 1) * config.width, config.dropout)
        self.spatial = SpatialReadout(config.width) if config.spatial else None

    def forward(self, text: torch.Tensor, mask: torch.Tensor, image: torch.Tensor) -> torch.Tensor:
        pad = ~mask
        for layer in self.layers:
            text, image = layer(text, pad, image)
        text = self.norm(text)
        pooled = pooled_text(text, mask)  # (B, D)
        if self.bidirectional:
            pooled = torch.cat([pooled, self.norm(image[:, 0])], dim=-1)  # + image class token
        logit = self.match(pooled).squeeze(-1)
        return logit if self.spatial is None else logit + self.spatial(text, mask, image[:, 1:])


class SingleStreamHead(nn.Module):
    """Text and image tokens in one transformer, told apart by modality embeddings."""

    def __init__(self, config: HeadConfig) -> None:
        super().__init__()
        self.cls = nn.Parameter(torch.zeros(1, 1, config.width))
        self.modality = nn.Parameter(torch.zeros(2, config.width))
        layer = nn.TransformerEncoderLayer(
            config.width,
            config.heads,
            4 * config.width,
            config.dropout,
            activation="gelu",
            batch_first=True,
            norm_first=True,
        )
        self.encoder = nn.TransformerEncoder(layer, config.layers, enable_nested_tensor=False)
        self.norm = nn.LayerNorm(config.width)
        self.match = nn.Linear(config.width, 1)
        self.spatial = SpatialReadout(config.width) if config.spatial else None

    def forward(self, text: torch.Tensor, mask: torch.Tensor, image: torch.Tensor) -> torch.Tensor:
        b, length = text.shape[:2]
        tokens = torch.cat([self.cls.expand(b, -1, -1), text + self.modality[0], image + self.modality[1]], dim=1)
        keep = torch.cat([mask.new_ones(b, 1), mask, mask.new_ones(b, image.shape[1])], dim=1)
        out = self.norm(self.encoder(tokens, src_key_padding_mask=~keep))
        logit = self.match(out[:, 0]).squeeze(-1)
        if self.spatial is None:
            return logit
        return logit + self.spatial(
            out[:, 1 : 1 + length], mask, out[:, 2 + length :]
        )  # text tokens; patches (after the image class token)


class BilinearHead(nn.Module):
    """Low-rank bilinear pooling (MLB): ``w . (tanh(U t) * tanh(V v))``."""

    reads_positions = False  # sees one pooled token per side: position codes would only add noise

    def __init__(self, config: HeadConfig) -> None:
        super().__init__()
        self.text = nn.Sequential(nn.LayerNorm(config.width), nn.Linear(config.width, config.rank), nn.Tanh())
        self.image = nn.Sequential(nn.LayerNorm(config.width), nn.Linear(config.width, config.rank), nn.Tanh())
        self.match = nn.Linear(config.rank, 1)

    def forward(self, text: torch.Tensor, mask: torch.Tensor, image: torch.Tensor) -> torch.Tensor:
        return self.match(self.text(pooled_text(text, mask)) * self.image(image[:, 0])).squeeze(-1)


class ConcatHead(nn.Module):
    """An MLP over the concatenated pooled text and image features."""

    reads_positions = False  # sees one pooled token per side: position codes would only add noise

    def __init__(self, config: HeadConfig) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(2 * config.width)
        self.match = nn.Sequential(
            nn.Linear(2 * config.width, 2 * config.width),
            nn.GELU(),
            nn.Dropout(config.dropout),
            _mlp(config.width, 2 * config.width, config.dropout),
        )

    def forward(self, text: torch.Tensor, mask: torch.Tensor, image: torch.Tensor) -> torch.Tensor:
        pooled = torch.cat([pooled_text(text, mask), image[:, 0]], dim=-1)
        return self.match(self.norm(pooled)).squeeze(-1)


# Registry: fusion name -> constructor. Add a head with add_head().
_HEADS: dict[str, Callable[[HeadConfig], nn.Module]] = {
    "cross-attention": CrossAttentionHead,
    "attention-pool": lambda config: CrossAttentionHead(config, bidirectional=False),
    "single-stream": SingleStreamHead,
    "bilinear": BilinearHead,
    "concat": ConcatHead,
}
DEFAULT_HEAD = "cross-attention"


def list_heads() -> list[str]:
    """Names of the registered fusion heads."""
    return list(_HEADS)


def add_head(name: str, factory: Callable[[HeadConfig], nn.Module]) -> None:
    """Register a fusion head constructor under ``name``."""
    _HEADS[name] = factory


def create_head(name: str, config: HeadConfig) -> nn.Module:
    """Build the fusion head ``name``.

    Raises:
        KeyError: no head of that name (the caller turns it into a message listing the names).
    """
    return _HEADS[name](config)
