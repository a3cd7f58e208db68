"""Contrastive training of an open_clip dual encoder on image-caption pairs.

Symmetric InfoNCE with a learnable temperature; optionally each line's hard negatives
join the image-to-text side (NegCLIP-style), which is what teaches a dual encoder to
tell "a red circle left of a blue square" from its colour-swapped twin. Captions that
repeat within a batch are masked, not treated as negatives. Runs are deterministic for a
seed on CPU and resume from their last checkpoint; the output is an open_clip
``local-dir`` folder that every command accepts as ``--model DIR``.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from index.atomic import atomic_write_bytes
from retrieval.errors import TrainingError
from retrieval.ingest.pairs import PairSet, load_pairs
from retrieval.models import registry
from retrieval.training.checkpoints import RunFolder
from retrieval.training.data import (
    Batch,
    ImageCache,
    canonical_caption,
    make_batch,
    step_order,
)

log = logging.getLogger(__name__)
if TYPE_CHECKING:
    import torch

CONFIG_DIR = Path(__file__).parent / "configs"  # shipped architectures (package data)
OPENAI_MEAN = (0.48145466, 0.4578275, 0.40821073)
OPENAI_STD = (0.26862954, 0.26130258, 0.27577711)


@dataclass(frozen=True)
class TrainConfig:
    """Settings of one training run (saved with it; resuming requires the same)."""

    arch: str = "xmr-shapes-s"  # shipped config name, open_clip architecture, or a config .json
    init: str = ""  # fine-tune this model (any --model value) instead of starting from scratch
    init_pretrained: str = ""  # --pretrained going with init
    epochs: int = 10  # passes over the pairs (ignored when steps > 0)
    steps: int = 0  # total optimiser steps; 0 derives it from epochs
    batch_size: int = 256  # pairs per step
    lr: float = 1e-3  # peak learning rate (AdamW)
    warmup_steps: int = 50  # linear warm-up, then cosine decay to lr/100
    weight_decay: float = 0.1  # on weight matrices only
    seed: int = 0  # data order, augmentation and initial weights
    hard_negatives: bool = True  # add each line's negatives to the image->text softmax
    augment: bool = True  # translations and caption-mirroring flips
    checkpoint_seconds: float = 60.0  # write a resumable checkpoint at least this often

    def total_steps(self, lines: int) -> int:
        return self.steps if self.steps > 0 else self.epochs * max(1, lines // self.batch_size)


@dataclass(frozen=True)
class TrainProgress:
    step: int  # steps done
    total: int  # steps planned
    loss: float  # mean loss over the last steps
    pairs_per_second: float
    temperature: float  # 1 / logit_scale


def shipped_configs() -> list[str]:
    """Names of the small architectures that ship with xmr (for 64 px Shapes World and CPUs)."""
    return sorted(p.stem for p in CONFIG_DIR.glob("*.json"))


def check_arch(arch: str) -> None:
    """Refuse an architecture that names nothing, from the files alone (torch is not imported).

    Raises:
        TrainingError: not a shipped name, an open_clip name or an existing config .json.
    """
    path = Path(arch).expanduser()
    if (CONFIG_DIR / f"{arch}.json").is_file() or (path.suffix == ".json" and path.is_file()):
        return
    if path.suffix == ".json":
        raise TrainingError(f"architecture config {arch} does not exist.")
    known = registry.architectures()
    if known and arch not in known:
        raise TrainingError(_unknown_arch(arch))


def _unknown_arch(arch: str) -> str:
    import difflib

    close = difflib.get_close_matches(arch, [*shipped_configs(), *sorted(registry.architectures())], n=3)
    hint = f" Did you mean {', '.join(close)}?" if close else ""
    return (
        f"unknown architecture {arch!r}.{hint} Shipped: {', '.join(shipped_configs())}, "
        "or any open_clip name, or a config .json file."
    )


def model_config(arch: str) -> tuple[str, dict]:
    """``(name, open_clip model_cfg)`` for a shipped name, an open_clip name or a .json path."""
    import open_clip

    if (CONFIG_DIR / f"{arch}.json").is_file():
        return arch, json.loads((CONFIG_DIR / f"{arch}.json").read_text())
    path = Path(arch).expanduser()
    if path.suffix == ".json" and path.is_file():
        raw = json.loads(path.read_text())
        return path.stem, raw.get("model_cfg", raw)
    cfg = open_clip.get_model_config(arch)
    if cfg is None:
        raise TrainingError(_unknown_arch(arch))
    return arch, cfg


def _build(config: TrainConfig):  # noqa: ANN202 -> (model, name, model_cfg, mean, std)
    import torch

    if config.init:
        from retrieval.models.encoder import load_encoder
        from retrieval.models.specs import ModelSpec, resolve

        resolved = resolve(ModelSpec(config.init, config.init_pretrained))
        encoder = load_encoder(resolved, device="cpu")
        cfg = _config_of(resolved)
        transform = getattr(encoder.model.visual, "preprocess_cfg", {}) or {}
        mean, std = transform.get("mean", OPENAI_MEAN), transform.get("std", OPENAI_STD)
        return encoder.model, f"{resolved.identity.arch}-ft", cfg, tuple(mean), tuple(std)
    import open_clip

    name, cfg = model_config(config.arch)
    torch.manual_seed(config.seed)
    return open_clip.CLIP(**cfg), name, cfg, OPENAI_MEAN, OPENAI_STD


def _config_of(resolved) -> dict:  # noqa: ANN001
    import open_clip

    if resolved.model_cfg_dir:
        return json.loads((Path(resolved.model_cfg_dir) / "open_clip_config.json").read_text())["model_cfg"]
    return open_clip.get_model_config(resolved.arch)


def _optimizer(model, config: TrainConfig):  # noqa: ANN001, ANN202
    import torch

    decay = [p for n, p in model.named_parameters() if p.ndim >= 2 and "embedding" not in n]
    rest = [p for n, p in model.named_parameters() if not (p.ndim >= 2 and "embedding" not in n)]
    groups = [{"params": decay, "weight_decay": config.weight_decay}, {"params": rest, "weight_decay": 0.0}]
    return torch.optim.AdamW(groups, lr=config.lr, betas=(0.9, 0.98), eps=1e-6)


def learning_rate(config: TrainConfig, step: int, total: int) -> float:
    """Linear warm-up to ``lr``, then cosine decay to ``lr / 100``."""
    if step < config.warmup_steps:
        return config.lr * (step + 1) / config.warmup_steps
    progress = (step - config.warmup_steps) / max(1, total - config.warmup_steps)
    return config.lr * (0.01 + 0.99 * 0.5 * (1 + math.cos(math.pi * min(1.0, progress))))


def contrastive_loss(model, tokenizer, batch: Batch) -> torch.Tensor:  # noqa: ANN001
    """Symmetric InfoNCE; hard negatives extend the image->text side.

    A column whose caption describes the same scene as the row's own caption (a repeat, a
    converse "X left of Y" / "Y right of X", or another line's negative that happens to be
    true here) is masked out instead of being pushed away.
    """
    import torch
    import torch.nn.functional as F

    texts = batch.captions + batch.negatives
    image = model.encode_image(batch.pixels, normalize=True)  # (B, D)
    text = model.encode_text(tokenizer(texts), normalize=True)  # (B + N, D)
    scale = model.logit_scale.exp().clamp(max=100)
    b = len(batch.captions)
    keys = [canonical_caption(t) for t in texts]
    codes = {key: i for i, key in enumerate(dict.fromkeys(keys))}
    code = torch.tensor([codes[k] for k in keys])  # (B + N,)
    false_negative = code[:b, None] == code[None, :]  # (B, B + N)
    false_negative[:, :b] &= ~torch.eye(b, dtype=torch.bool)
    i2t = (scale * image @ text.T).masked_fill(false_negative, float("-inf"))  # (B, B + N)
    t2i = (scale * text[:b] @ image.T).masked_fill(false_negative[:, :b], float("-inf"))  # (B, B)
    target = torch.arange(b)
    return (F.cross_entropy(i2t, target) + F.cross_entropy(t2i, target)) / 2


def train(
    pairs_dir: str | Path,
    out: str | Path,
    config: TrainConfig = TrainConfig(),
    on_progress: Callable[[TrainProgress], None] | None = None,
    split: str = "train",
    on_stage: Callable[[str], None] | None = None,
) -> Path:
    """Train (or resume training) on ``pairs_dir`` into the model folder ``out``.

    The pairs and the architecture are checked before torch is imported (an unknown name
    fails in about a second). ``on_stage`` hears notes as the run starts: "loading the
    pairs", "building the model", "resuming at step 19 of 50"; a warm-up as long as the run is logged as a warning.

    Raises:
        PairsFormatError: the pairs are malformed.
        TrainingError: ``out`` holds a run with other settings, or the architecture is unknown.
    """
    stage = on_stage or (lambda note: None)
    if not config.init:
        check_arch(config.arch)
    out = Path(out).expanduser().resolve()
    stage("loading the pairs")
    pairs = load_pairs(pairs_dir, split=split)
    stage("building the model")
    import torch

    if config.hard_negatives and not pairs.has_negatives:
        config = dataclasses.replace(config, hard_negatives=False)
    run = RunFolder(out, {"config": dataclasses.asdict(config)}, TrainingError)
    state = run.resume_state()
    if state.get("done"):
        return out
    torch.manual_seed(config.seed)
    model, name, cfg, mean, std = _build(config)
    import open_clip

    tokenizer = open_clip.get_tokenizer("local-dir:" + str(_write_config(out, name, cfg, mean, std)))
    optimizer = _optimizer(model, config)
    total = config.total_steps(len(pairs))
    if config.warmup_steps >= total:
        log.warning(
            "warm-up (%d steps) is as long as the whole run (%d steps): the learning rate never reaches --lr; "
            "give a shorter --warmup or more --steps",
            config.warmup_steps,
            total,
        )
    step = run.load({"model": model, "optimizer": optimizer})
    if 0 < step < total:
        stage(f"resuming at step {step} of {total}")
    _loop(model, tokenizer, optimizer, pairs, config, (mean, std), run, step, total, on_progress)
    _export(run, model, total)
    return out


def _loop(
    model,
    tokenizer,
    optimizer,
    pairs: PairSet,
    config: TrainConfig,
    norm: tuple[Sequence[float], Sequence[float]],  # (mean, std) of the model's preprocessing
    run: RunFolder,
    step: int,
    total: int,
    on_progress,
) -> None:  # noqa: ANN001, PLR0913
    import torch

    model.train()
    cache = ImageCache(
        pairs.images,
        model.visual.image_size[0] if isinstance(model.visual.image_size, tuple) else model.visual.image_size,
    )
    window: list[float] = []  # the last 20 losses
    last_save, started, done_at_start = time.monotonic(), time.monotonic(), step
    try:
        while step < total:
            for group in optimizer.param_groups:
                group["lr"] = learning_rate(config, step, total)
            lines = step_order(len(pairs), config.batch_size, step, config.seed)
            batch = make_batch(pairs, cache, lines, step, config.seed, *norm, augment=config.augment)
            if not config.hard_negatives:
                batch = dataclasses.replace(batch, negatives=[], negative_owner=[])
            loss = contrastive_loss(model, tokenizer, batch)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            with torch.no_grad():
                model.logit_scale.clamp_(0, math.log(100))
            step += 1
            window = (window + [loss.item()])[-20:]
            if time.monotonic() - last_save > config.checkpoint_seconds or step == total:
                run.save({"model": model, "optimizer": optimizer}, step)
                last_save = time.monotonic()
            if on_progress:
                rate = (step - done_at_start) * config.batch_size / max(1e-9, time.monotonic() - started)
                on_progress(
                    TrainProgress(step, total, sum(window) / len(window), rate, 1.0 / model.logit_scale.exp().item())
                )
    finally:
        cache.close()


def _write_config(out: Path, name: str, cfg: dict, mean, std) -> Path:  # noqa: ANN001
    out.mkdir(parents=True, exist_ok=True)
    body = {
        "model_name": name,
        "model_cfg": cfg,
        "preprocess_cfg": {"mean": list(mean), "std": list(std), "interpolation": "bicubic", "resize_mode": "shortest"},
    }
    atomic_write_bytes(out / "open_clip_config.json", json.dumps(body, indent=2).encode())
    return out


def _export(run: RunFolder, model, total: int) -> None:  # noqa: ANN001
    from safetensors.torch import save

    model.eval()
    state = {k: v.detach().contiguous() for k, v in model.state_dict().items()}
    atomic_write_bytes(run.out / "open_clip_model.safetensors", save(state))
    run.finish(total)
