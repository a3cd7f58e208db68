"""The trained reranker: token projections, a fusion head, and the dual-score prior.

``logit = head(text tokens, image tokens) + a * dual_cosine + b``; the matching probability
is ``sigmoid(logit)``. The dual encoder's cosine enters as a learned prior: the head only
has to learn what the dual encoder gets wrong (binding, relations) instead of relearning
retrieval from scratch, which is why reranking no longer loses recall the dual encoder had.

A reranker folder holds ``reranker.json`` (schema version, config, the identity of the
encoder it was trained on, a training summary) and ``reranker.safetensors``.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import nn

from index.atomic import atomic_write_bytes
from index.errors import CorruptFileError
from index.manifest import ModelIdentity
from retrieval.errors import RerankerError, RerankerMismatchError
from retrieval.models.features import TokenShape
from retrieval.rerank.heads import DEFAULT_HEAD, HeadConfig, create_head, list_heads

CONFIG_NAME = "reranker.json"
WEIGHTS_NAME = "reranker.safetensors"
FORMAT = "xmr-reranker"
# 1: first release (token projections + fusion head + dual-score prior).
# 2: token-sequence heads may carry a spatial readout (HeadConfig.spatial); schema-1 folders load without one.
SCHEMA_VERSION = 2


@dataclass(frozen=True)
class RerankerConfig:
    """Architecture of a reranker (saved with its weights)."""

    fusion: str = DEFAULT_HEAD  # fusion head name, see retrieval.rerank.heads.list_heads()
    head: HeadConfig = field(default_factory=HeadConfig)  # size of the head
    tokens: TokenShape = TokenShape(1, 1, 1, 1)  # the encoder's token grid (set from the encoder)
    dual_weight: float = 10.0  # initial weight of the dual cosine in the logit (learned)
    pool: int = 1  # average-pool the patch grid by this factor before fusion (2: 4x fewer tokens)
    dual_prior: bool = True  # add the (learned-weight) dual cosine to the logit; False: the head alone
    align_init: bool = True  # start the token projections from the encoder's own (width == embed dim)

    def to_dict(self) -> dict[str, object]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, raw: dict) -> RerankerConfig:
        return cls(
            fusion=raw["fusion"],
            head=HeadConfig(**{"spatial": False, **raw["head"]}),
            tokens=TokenShape(**raw["tokens"]),
            dual_weight=float(raw["dual_weight"]),
            pool=int(raw.get("pool", 1)),
            dual_prior=bool(raw.get("dual_prior", True)),
            align_init=bool(raw.get("align_init", False)),
        )

    def fused_image_tokens(self) -> int:
        """Image tokens the head sees: the class token plus the (pooled) patch grid."""
        side = _grid_side(self.tokens.image)
        return 1 + (-(-side // self.pool)) ** 2 if side else self.tokens.image


def sincos_1d(length: int, width: int) -> torch.Tensor:
    """``(length, width)`` sine-cosine position codes (geometric frequencies, period 2pi .. ~60)."""
    half = width // 2
    freq = 10.0 ** (-torch.arange(half, dtype=torch.float32) / max(1, half))
    angle = torch.arange(length, dtype=torch.float32)[:, None] * freq  # (length, half)
    codes = torch.cat([angle.sin(), angle.cos()], dim=1)
    return torch.nn.functional.pad(codes, (0, width - codes.shape[1]))


def sincos_grid(tokens: int, width: int) -> torch.Tensor:
    """``(tokens, width)`` codes for a class token (zeros) plus a square patch grid (x half, y half).

    Not a square grid: 1-D codes over all tokens.
    """
    side = _grid_side(tokens)
    if not side:
        return sincos_1d(tokens, width)
    x = sincos_1d(side, width // 2)  # (S, W/2)
    grid = torch.cat([x.repeat(side, 1), x.repeat_interleave(side, dim=0)], dim=1)  # row by row: x varies fastest
    grid = torch.nn.functional.pad(grid, (0, width - grid.shape[1]))
    return torch.cat([grid.new_zeros(1, width), grid], dim=0)


def _grid_side(tokens: int) -> int:
    """Side of the square patch grid behind ``tokens`` (class token first), 0 if not square."""
    side = int(round((tokens - 1) ** 0.5))
    return side if side * side == tokens - 1 else 0


class RerankerNet(nn.Module):
    """Projects both token sequences to the head's width (plus learned positions) and fuses."""

    def __init__(self, config: RerankerConfig) -> None:
        super().__init__()
        if config.fusion not in list_heads():
            raise RerankerError(f"unknown fusion head {config.fusion!r}; choose one of {', '.join(list_heads())}.")
        width, shape = config.head.width, config.tokens
        self.config = config
        self.text_in = nn.Sequential(nn.LayerNorm(shape.text_width), nn.Linear(shape.text_width, width))
        self.image_in = nn.Sequential(nn.LayerNorm(shape.image_width), nn.Linear(shape.image_width, width))
        # Own position embeddings: where a token sits is what relations are about, and the
        # frozen final-layer tokens keep only a faded trace of the encoder's positions. They
        # start as sine-cosine codes (2-D over the patch grid) as large as the projected
        # tokens: started near zero (std 0.02) they stayed too faint to learn from in a
        # training run of minutes, and t2i R@1 on Shapes World went 0.25 -> 0.52 with this.
        self.head = create_head(config.fusion, config.head)
        codes = getattr(self.head, "reads_positions", True)
        self.text_pos = nn.Parameter(sincos_1d(shape.text, width) if codes else torch.zeros(shape.text, width))
        self.image_pos = nn.Parameter(
            sincos_grid(config.fused_image_tokens(), width)
            if codes
            else torch.zeros(config.fused_image_tokens(), width)
        )
        self.dual_weight = nn.Parameter(
            torch.tensor(float(config.dual_weight) if config.dual_prior else 0.0), requires_grad=config.dual_prior
        )
        self.bias = nn.Parameter(torch.tensor(0.0))

    def forward(self, text: torch.Tensor, mask: torch.Tensor, image: torch.Tensor, dual: torch.Tensor) -> torch.Tensor:
        """``text (B, L, Wt)``, ``mask (B, L)``, ``image (B, T, Wi)``, ``dual (B,)`` -> logits ``(B,)``."""
        text = self.text_in(text.float()) + self.text_pos
        image = self.image_in(self._pooled(image.float())) + self.image_pos
        return self.head(text, mask, image) + self.dual_weight * dual.float() + self.bias

    @torch.no_grad()
    def align_to(self, text_projection: torch.Tensor, image_projection: torch.Tensor) -> None:
        """Initialise the token projections with the encoder's output projections ``(W, E)``.

        Tokens then start in the dual encoder's joint space, where a caption word and the
        patches showing it are already similar, and attention starts out following that
        similarity; training refines it instead of discovering the alignment from scratch.
        """
        for layer, proj in ((self.text_in[1], text_projection), (self.image_in[1], image_projection)):
            assert isinstance(layer, nn.Linear)  # text_in and image_in are (LayerNorm, Linear)
            if proj.shape != (layer.in_features, layer.out_features):
                return  # the head's width differs from the embedding size: keep the random start
            layer.weight.copy_(proj.T.to(layer.weight.dtype))
            layer.bias.zero_()
        for module in self.head.modules():
            match_identity = getattr(module, "match_identity", None)  # attention blocks have one
            if match_identity is not None:
                match_identity()

    def _pooled(self, image: torch.Tensor) -> torch.Tensor:
        """``(B, 1 + S*S, W)`` -> ``(B, 1 + (S/p)^2, W)``: average-pool the patch grid."""
        side, pool = _grid_side(image.shape[1]), self.config.pool
        if pool <= 1 or not side:
            return image
        b, _, w = image.shape
        grid = image[:, 1:].reshape(b, side, side, w).permute(0, 3, 1, 2)  # (B, W, S, S)
        pooled = torch.nn.functional.avg_pool2d(grid, pool, ceil_mode=True).flatten(2).transpose(1, 2)  # (B, S'^2, W)
        return torch.cat([image[:, :1], pooled], dim=1)


@dataclass(frozen=True)
class SavedReranker:
    """A reranker read from its folder."""

    net: RerankerNet
    encoder: ModelIdentity  # the encoder whose tokens it reads
    summary: dict  # how it was trained (data, steps, losses)


def save_reranker(out: Path, net: RerankerNet, encoder: ModelIdentity, summary: dict) -> None:
    """Write ``net`` with the identity of its encoder into the folder ``out`` (atomically per file)."""
    from safetensors.torch import save

    out.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().cpu().contiguous() for k, v in net.state_dict().items()}
    atomic_write_bytes(out / WEIGHTS_NAME, save(state))
    meta = {
        "format": FORMAT,
        "schema": SCHEMA_VERSION,
        "config": net.config.to_dict(),
        "encoder": encoder.to_dict(),
        "summary": summary,
    }
    atomic_write_bytes(out / CONFIG_NAME, json.dumps(meta, indent=2).encode())


def load_reranker(folder: str | Path, encoder: ModelIdentity | None = None) -> SavedReranker:
    """Read a reranker folder; with ``encoder``, refuse one trained on another encoder.

    Raises:
        RerankerError: no reranker there, or written by a newer xmr.
        CorruptFileError: the config or weights are unreadable.
        RerankerMismatchError: trained on another encoder than ``encoder``.
    """
    from safetensors.torch import load_file

    folder = Path(folder).expanduser()
    if not (folder / CONFIG_NAME).is_file():
        raise RerankerError(
            f"{folder} holds no reranker ({CONFIG_NAME} missing); train one with `xmr train-reranker PAIRS --model M --out {folder}`."
        )
    try:
        meta = json.loads((folder / CONFIG_NAME).read_text())
        config = RerankerConfig.from_dict(meta["config"])
        trained_on = ModelIdentity.from_dict(meta["encoder"])
    except (ValueError, KeyError, TypeError) as exc:
        raise CorruptFileError(f"{folder / CONFIG_NAME} is unreadable ({exc}); train the reranker again.") from exc
    if meta.get("format") != FORMAT or int(meta.get("schema", 0)) > SCHEMA_VERSION:
        raise RerankerError(f"{folder} was written by a newer xmr (reranker schema {meta.get('schema')}); upgrade xmr.")
    if encoder is not None and not trained_on.same_model(encoder):
        raise RerankerMismatchError(
            f"the reranker in {folder} was trained on {trained_on.label()}, but the library's encoder is {encoder.label()}; "
            "train a reranker for this library's model with `xmr train-reranker PAIRS --model <the library's model>`."
        )
    net = RerankerNet(config)
    try:
        net.load_state_dict(load_file(str(folder / WEIGHTS_NAME)))
    except Exception as exc:  # noqa: BLE001 (safetensors raises several kinds)
        raise CorruptFileError(f"{folder / WEIGHTS_NAME} is unreadable ({exc}); train the reranker again.") from exc
    net.eval()
    return SavedReranker(net, trained_on, meta.get("summary", {}))
