"""Training a reranker on image-caption pairs over a frozen encoder's token features.

What the loss sees is what search will ask: for each caption, its image among the images
the dual encoder confuses it with (mined from the dual top-K, plus a random one); for each
image, its caption among the pairs' own negatives and the captions the dual encoder
confuses it with. A softmax over each such group ranks the true match first (listwise);
a binary term on every pair keeps ``sigmoid(logit)`` a calibrated match probability.
The first ``relation_steps`` contrast each caption naming a spatial relation with its
reversal on the same image (the full loss alone never finds relations; after this
warm-up it keeps them), and training ends by calibrating the head's spatial readout
(:func:`calibrate_spatial`). Optional terms (off by default, see
:class:`RerankTrainConfig`): the caption against its own negatives alone (binding), and
the relation contrast as a term of the full loss.
"""

from __future__ import annotations

import dataclasses
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from retrieval.errors import RerankerError
from retrieval.ingest.pairs import PairSet, load_pairs
from retrieval.models.encoder import ClipEncoder
from retrieval.models.features import token_shape
from retrieval.rerank.heads import DEFAULT_HEAD, HeadConfig, SpatialReadout
from retrieval.rerank.model import RerankerConfig, RerankerNet, save_reranker
from retrieval.training.checkpoints import RunFolder
from retrieval.training.corpus import (
    ImageBank,
    TextBank,
    encode_image_bank,
    encode_text_bank,
    pair_texts,
)
from retrieval.training.data import canonical_caption, mirror_caption, reverse_relations
from retrieval.training.mining import Confusions, mine
from retrieval.training.pair_scores import net_scorer, pair_logits


@dataclass(frozen=True)
class RerankTrainConfig:
    """Settings of one reranker training run (saved with it; resuming requires the same)."""

    fusion: str = DEFAULT_HEAD  # fusion head name
    width: int = 64  # channels inside the head; 0: the encoder's embedding size
    layers: int = 2  # fusion layers (hops)
    heads: int = 4  # attention heads
    pool: int = 2  # average-pool the image patch grid by this factor (fewer tokens, faster)
    spatial: bool = True  # the head's spatial readout (where each word looks, straight into the logit)
    steps: int = 800  # optimiser steps
    batch_size: int = 64  # caption lines per step
    lr: float = 1e-3  # peak learning rate (AdamW), warm-up then cosine decay
    warmup_steps: int = 50  # linear warm-up steps
    weight_decay: float = 0.05  # on weight matrices only
    mine_k: int = 16  # dual-encoder confusions kept per caption and per image
    hard_images: int = 4  # mined images per caption per step
    hard_captions: int = 2  # mined captions per image per step (on top of the pairs' negatives)
    pair_negatives: int = 3  # the pairs' own negatives per image per step (mined ones fill in)
    random_negatives: int = 1  # random images per caption per step (keeps easy cases scored low)
    bce_weight: float = 0.5  # weight of the per-pair binary loss next to the listwise loss
    binding_weight: float = 0.0  # weight of the softmax over each image's caption and the pairs' own negatives
    binding_steps: int = 0  # first steps on binding groups alone (caption vs its own negatives), part of ``steps``
    relation_weight: float = (
        0.0  # weight of caption vs relations-reversed caption on the same image (lines naming a relation)
    )
    relation_steps: int = 200  # first steps on that contrast alone (after any binding steps), part of ``steps``
    mined: bool = True  # negatives from the dual encoder's confusions; False: random ones (ablation)
    listwise: bool = True  # softmax over each candidate group; False: the binary loss alone (ablation)
    dual_prior: bool = True  # the dual cosine enters the logit with a learned weight (ablation: False)
    align_init: bool = False  # start the head in the encoder's joint space (needs width == embed dim)
    mirror: bool = False  # mirror half the lines: the token grid's columns and left/right in every caption
    calibrate_lines: int = 1000  # lines (and as many images) that set the spatial readout's scale; 0: keep 1
    calibrate_held_out: bool = True  # take those lines' images out of training (when there are >= 5x as many images)
    calibrate_k: int = 50  # dual top-K reranked while calibrating
    seed: int = 0  # data order and initial weights
    checkpoint_seconds: float = 60.0  # write a resumable checkpoint at least this often


@dataclass(frozen=True)
class RerankProgress:
    phase: str  # "features", "mining" or "training"
    done: int  # images encoded / steps done
    total: int
    loss: float  # mean loss over the last steps (training)
    pairs_per_second: float  # scored pairs per second (training)


@dataclass(frozen=True)
class _Data:
    pairs: PairSet
    images: ImageBank
    texts: TextBank
    confusions: Confusions
    image_keys: tuple[frozenset[str], ...]  # caption keys true for each image
    caption_rows: np.ndarray  # text-bank row of each line's caption
    mined_rows: np.ndarray  # text-bank row of each mined caption
    mirrored: np.ndarray  # text-bank row of each text's mirror image (left <-> right)
    with_negatives: np.ndarray  # lines that carry negatives of their own
    reversed: np.ndarray  # text-bank row of each text with its spatial relations reversed (itself if none)
    with_relations: np.ndarray  # lines whose caption names a spatial relation


def train_reranker(
    pairs_dir: str | Path,
    encoder: ClipEncoder,
    out: str | Path,
    config: RerankTrainConfig = RerankTrainConfig(),
    on_progress: Callable[[RerankProgress], None] | None = None,
    split: str = "train",
    images_root: str | Path | None = None,
) -> Path:
    """Train (or resume) a reranker for ``encoder`` on ``pairs_dir`` into the folder ``out``.

    Raises:
        PairsFormatError: the pairs are malformed.
        RerankerError: unknown fusion head, or ``out`` holds a run with other settings.
    """
    out = Path(out).expanduser().resolve()
    run = RunFolder(
        out,
        {"config": dataclasses.asdict(config), "encoder": encoder.identity.to_dict()},
        RerankerError,
        "reranker run",
    )
    state = run.resume_state()
    if state.get("done"):
        return out
    torch.manual_seed(config.seed)
    net = build_net(config, encoder)
    optimizer = _optimizer(net, config)
    step = run.load({"net": net, "optimizer": optimizer})
    pairs, held_out = split_calibration(
        load_pairs(pairs_dir, split=split, images_root=images_root),
        config,
        getattr(net.head, "spatial", None) is not None,
    )
    data = prepare(pairs, encoder, config.mine_k, on_progress)
    started = time.monotonic()
    losses = _loop(net, optimizer, data, config, run, step, on_progress)
    calibration = calibrate_spatial(
        net, data if held_out is None else prepare(held_out, encoder, config.mine_k), config
    )
    if calibration:
        calibration["lines_from"] = "training" if held_out is None else "held out"
    summary = {
        "pairs": str(Path(pairs_dir).expanduser().resolve()),
        "lines": len(data.pairs),
        "images": len(data.pairs.images),
        "held_out_lines": 0 if held_out is None else len(held_out),
        "config": dataclasses.asdict(config),
        "final_loss": losses[-1] if losses else None,
        "train_seconds": round(time.monotonic() - started, 1),
        "spatial_calibration": calibration,
    }
    save_reranker(out, net, encoder.identity, summary)
    run.finish(config.steps)
    return out


def split_calibration(
    pairs: PairSet, config: RerankTrainConfig, readout: bool = True
) -> tuple[PairSet, PairSet | None]:
    """``(training pairs, held-out pairs)``: the lines of ``calibrate_lines`` random images are
    kept out of training to calibrate the spatial readout on (None: nothing held out).

    On lines it was trained on, the readout looks more useful than it is (on the Shapes World
    recipe, training lines chose scale 0.5 and unseen lines 0.25, which gave t2i R@1 0.735
    instead of 0.600 on the test split). Small sets (fewer than 5x ``calibrate_lines``
    images) are not split: there the training lines serve, as before; nor are the pairs of a
    head without a readout (``readout`` False).
    """
    want = config.calibrate_lines
    if not config.calibrate_held_out or want <= 0 or len(pairs.images) < 5 * want or not readout:
        return pairs, None
    rng = np.random.default_rng([config.seed, 2])
    chosen = set(rng.choice(len(pairs.images), want, replace=False).tolist())
    held = [j for j, image in enumerate(pairs.caption_image) if image in chosen]
    kept = [j for j, image in enumerate(pairs.caption_image) if image not in chosen]
    return pairs.subset(kept), pairs.subset(held)


def build_net(config: RerankTrainConfig, encoder: ClipEncoder) -> RerankerNet:
    """A fresh reranker for ``encoder``'s tokens (aligned to its joint space when asked and possible)."""
    from retrieval.models.features import output_projections

    width = config.width if config.width > 0 else encoder.dim
    head = HeadConfig(width, config.layers, config.heads, spatial=config.spatial)
    net = RerankerNet(
        RerankerConfig(
            config.fusion,
            head,
            token_shape(encoder),
            pool=config.pool,
            dual_prior=config.dual_prior,
            align_init=config.align_init,
        )
    )
    projections = output_projections(encoder) if config.align_init else None
    if projections is not None:
        net.align_to(*projections)
    return net


def prepare(
    pairs: PairSet, encoder: ClipEncoder, mine_k: int, on_progress: Callable[[RerankProgress], None] | None = None
) -> _Data:
    """Token features of every image and text of ``pairs``, and the dual encoder's confusions."""
    done = [0]

    def tick(n: int) -> None:
        done[0] += n
        if on_progress:
            on_progress(RerankProgress("features", done[0], len(pairs.images), 0.0, 0.0))

    images = encode_image_bank(encoder, pairs.images, on_batch=tick)
    words = pair_texts(pairs)
    texts = encode_text_bank(
        encoder, [*words, *(mirror_caption(t) for t in words), *(reverse_relations(t) for t in words)]
    )
    caption_rows = np.array([texts.index[c] for c in pairs.captions])
    if on_progress:
        on_progress(RerankProgress("mining", 0, 1, 0.0, 0.0))
    confusions = mine(pairs, images.vectors, texts.vectors[caption_rows], canonical_caption, k=mine_k)
    image_keys: list[set[str]] = [set() for _ in pairs.images]
    for line, image in enumerate(pairs.caption_image):
        image_keys[image].add(canonical_caption(pairs.captions[line]))
    mined_rows = np.array([texts.index[t] for t in confusions.texts])
    mirrored = np.array([texts.index[mirror_caption(t)] for t in texts.texts])
    with_negatives = np.array([line for line, negs in enumerate(pairs.negatives) if negs], dtype=np.int64)
    reversed_rows = np.array([texts.index[reverse_relations(t)] for t in texts.texts])
    with_relations = np.flatnonzero(reversed_rows[caption_rows] != caption_rows)
    return _Data(
        pairs,
        images,
        texts,
        confusions,
        tuple(frozenset(k) for k in image_keys),
        caption_rows,
        mined_rows,
        mirrored,
        with_negatives,
        reversed_rows,
        with_relations,
    )


def _sample(
    data: _Data, config: RerankTrainConfig, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray, int, int, np.ndarray]:
    """One step's pairs: text rows and image rows ``(P,)``, laid out per line as
    ``[positive, image negatives..., caption negatives...]``; returns the two group sizes
    and which caption negatives are the line's own (``(batch, n_txt)`` bool)."""
    n_img = config.hard_images + config.random_negatives
    n_txt = config.pair_negatives + config.hard_captions
    lines = rng.integers(0, len(data.pairs), config.batch_size)
    text_rows, image_rows, own = [], [], np.zeros((len(lines), n_txt), dtype=bool)
    for at, line in enumerate(lines):
        image = data.pairs.caption_image[line]
        caption = data.caption_rows[line]
        mined = data.confusions.images[line] if config.mined else np.zeros(0, np.int64)
        mined = mined[mined >= 0]
        hard = rng.choice(mined, min(config.hard_images, len(mined)), replace=False).tolist() if len(mined) else []
        key = canonical_caption(data.pairs.captions[line])
        while len(hard) < n_img:  # random images that do not show this scene
            pick = int(rng.integers(0, len(data.pairs.images)))
            if key not in data.image_keys[pick]:
                hard.append(pick)
        words = [data.texts.index[t] for t in data.pairs.negatives[line]]
        words = rng.permutation(words)[: config.pair_negatives].tolist() if words else []
        own[at, : len(words)] = True
        mined_c = data.confusions.captions[image] if config.mined else np.zeros(0, np.int64)
        mined_c = data.mined_rows[mined_c[mined_c >= 0]]
        extra = rng.permutation(mined_c)[: n_txt - len(words)].tolist()
        words += extra
        while len(words) < n_txt:  # tiny data: fall back to random captions of other scenes
            pick = int(rng.integers(0, len(data.pairs)))
            if canonical_caption(data.pairs.captions[pick]) not in data.image_keys[image]:
                words.append(int(data.caption_rows[pick]))
        text_rows += [caption] * (1 + n_img) + words
        image_rows += [image, *hard] + [image] * n_txt
    return np.array(text_rows), np.array(image_rows), n_img, n_txt, own


def _sample_binding(
    data: _Data, config: RerankTrainConfig, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A binding step's pairs: for ``2 * batch_size`` lines that have negatives of their own,
    the image with its caption and with each own negative; returns rows and ``own (lines, n)``."""
    have = data.with_negatives
    lines = have[rng.integers(0, len(have), 2 * config.batch_size)]
    n = config.pair_negatives
    text_rows = np.empty((len(lines), 1 + n), np.int64)
    own = np.zeros((len(lines), n), dtype=bool)
    for at, line in enumerate(lines):
        words = rng.permutation([data.texts.index[t] for t in data.pairs.negatives[line]])[:n]
        text_rows[at] = [data.caption_rows[line], *words, *[data.caption_rows[line]] * (n - len(words))]
        own[at, : len(words)] = True
    image_rows = np.repeat(np.asarray(data.pairs.caption_image)[lines], 1 + n)
    return text_rows.ravel(), image_rows, own


def binding_loss(logits: torch.Tensor, own: torch.Tensor) -> torch.Tensor:
    """Softmax over each line's ``[caption, own negatives...]`` (padding masked out)."""
    groups = logits.view(own.shape[0], 1 + own.shape[1])
    masked = torch.cat([groups[:, :1], groups[:, 1:].masked_fill(~own, float("-inf"))], dim=1)
    return F.cross_entropy(masked, torch.zeros(own.shape[0], dtype=torch.long, device=logits.device))


def reranker_loss(
    logits: torch.Tensor,
    batch: int,
    n_img: int,
    n_txt: int,
    bce_weight: float,
    listwise: bool = True,
    own: torch.Tensor | None = None,
    binding_weight: float = 0.0,
) -> torch.Tensor:
    """Listwise loss over each caption's and each image's candidate group + binary loss.

    With ``own (batch, n_txt)`` and ``binding_weight``, also a softmax over each image's
    caption and that line's own negatives alone (colour swapped, relation reversed...),
    which differ from the caption by a word and share its dual score. Off by default: on
    Shapes World it changed neither binding nor relations measurably (benchmarks/README.md).
    """
    per_line = logits.view(batch, 1 + n_img + n_txt)  # [pos, image negatives, caption negatives]
    t2i = per_line[:, : 1 + n_img]
    i2t = torch.cat([per_line[:, :1], per_line[:, 1 + n_img :]], dim=1)
    target = torch.zeros(batch, dtype=torch.long, device=logits.device)
    labels = torch.zeros_like(per_line)
    labels[:, 0] = 1.0
    weights = torch.ones_like(per_line)
    weights[:, 0] = n_img + n_txt  # balance positives against negatives
    binary = F.binary_cross_entropy_with_logits(per_line, labels, weight=weights / weights.mean())
    if not listwise:
        return binary
    loss = F.cross_entropy(t2i, target) + F.cross_entropy(i2t, target) + bce_weight * binary
    if own is not None and binding_weight > 0 and bool(own.any()):
        rows = own.any(dim=1)  # lines that have negatives of their own
        captions = torch.cat([per_line[:, :1], per_line[:, 1 + n_img :]], dim=1)  # [caption, caption negatives]
        loss = loss + binding_weight * binding_loss(captions[rows].reshape(-1), own[rows])
    return loss


def _loop(
    net: RerankerNet,
    optimizer: torch.optim.Optimizer,
    data: _Data,
    config: RerankTrainConfig,
    run: RunFolder,
    step: int,
    on_progress,
) -> list[float]:  # noqa: ANN001, PLR0913
    net.train()
    window: list[float] = []
    last_save, started, pairs = time.monotonic(), time.monotonic(), 0
    while step < config.steps:
        for group in optimizer.param_groups:
            group["lr"] = _learning_rate(config, step)
        rng = np.random.default_rng([config.seed, step])
        text_rows, loss = _step_loss(net, data, config, step, rng)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(net.parameters(), 1.0)
        optimizer.step()
        step, pairs = step + 1, pairs + len(text_rows)
        window = (window + [loss.item()])[-20:]
        if time.monotonic() - last_save > config.checkpoint_seconds and step < config.steps:
            run.save({"net": net, "optimizer": optimizer}, step)
            last_save = time.monotonic()
        if on_progress:
            on_progress(
                RerankProgress(
                    "training",
                    step,
                    config.steps,
                    sum(window) / len(window),
                    pairs / max(1e-9, time.monotonic() - started),
                )
            )
    net.eval()
    return window


def _step_loss(
    net: RerankerNet, data: _Data, config: RerankTrainConfig, step: int, rng: np.random.Generator
) -> tuple[np.ndarray, torch.Tensor]:
    """The pairs scored at ``step`` and their loss: a binding step first, then full steps."""
    device = net.bias.device
    if step < config.binding_steps and len(data.with_negatives):
        text_rows, image_rows, own = _sample_binding(data, config, rng)
        return text_rows, binding_loss(
            pair_logits(net, data.texts, data.images, text_rows, image_rows), torch.from_numpy(own).to(device)
        )
    if step < config.binding_steps + config.relation_steps and len(data.with_relations):
        lines = data.with_relations[rng.integers(0, len(data.with_relations), 2 * config.batch_size)]
        captions, images = data.caption_rows[lines], np.asarray(data.pairs.caption_image)[lines]
        return np.concatenate([captions, captions]), _relation_loss(net, data, captions, images)
    text_rows, image_rows, n_img, n_txt, own = _sample(data, config, rng)
    flip = None
    if config.mirror:  # per line, so a caption and its candidates are mirrored together
        flip = np.repeat(rng.random(config.batch_size) < 0.5, len(text_rows) // config.batch_size)
    logits = pair_logits(net, data.texts, data.images, text_rows, image_rows, flip, data.mirrored)
    loss = reranker_loss(
        logits,
        config.batch_size,
        n_img,
        n_txt,
        config.bce_weight,
        config.listwise,
        torch.from_numpy(own).to(device),
        config.binding_weight,
    )
    if config.relation_weight > 0:
        loss = loss + config.relation_weight * _relation_loss(
            net,
            data,
            text_rows[:: len(text_rows) // config.batch_size],
            image_rows[:: len(image_rows) // config.batch_size],
        )
    return text_rows, loss


def _relation_loss(net: RerankerNet, data: _Data, caption_rows: np.ndarray, image_rows: np.ndarray) -> torch.Tensor:
    """Each line's caption against the same caption with its relations reversed, on its image.

    The two differ in one word and have the same dual score, so only where things are can
    tell them apart. Without the head's spatial readout a head escaped a long plateau on
    this contrast only by chance; with it, within 100 steps in both seeds tried
    (benchmarks/README.md, sessions 4 and 5).
    """
    flipped = data.reversed[caption_rows]
    has = flipped != caption_rows
    if not has.any():
        return torch.zeros((), device=net.bias.device)
    texts = np.concatenate([caption_rows[has], flipped[has]])
    logits = (
        pair_logits(net, data.texts, data.images, texts, np.concatenate([image_rows[has]] * 2)).view(2, -1).T
    )  # (n, 2)
    return F.cross_entropy(logits, torch.zeros(len(logits), dtype=torch.long, device=logits.device))


SPATIAL_SCALES = (1.0, 0.5, 0.25, 0.125, 0.0625)  # tried by calibrate_spatial, largest first


def calibrate_spatial(net: RerankerNet, data: _Data, config: RerankTrainConfig) -> dict[str, object]:
    """Set the head's spatial readout scale to what ranks ``data``'s lines best (held-out lines,
    see :func:`split_calibration`, or the training lines); returns the record.

    For ``calibrate_lines`` captions (each against its dual top-``calibrate_k`` images) and as
    many images (each against its top-K distinct captions), the share of queries whose
    reranked first candidate is true (any image showing the caption, any caption true of the
    image) under each scale in :data:`SPATIAL_SCALES`; the best mean of the two wins, ties to
    the larger scale. One forward pass serves every scale (the readout is additive).
    """
    readout = getattr(net.head, "spatial", None)
    if readout is None or config.calibrate_lines <= 0:
        return {}
    rng = np.random.default_rng([config.seed, 1])
    k = max(1, min(config.calibrate_k, len(data.pairs.images)))
    keys = [canonical_caption(t) for t in data.texts.texts]
    lines = rng.choice(len(data.pairs), min(config.calibrate_lines, len(data.pairs)), replace=False)
    captions = data.caption_rows[lines]
    images = _top_k(data.texts.vectors[captions] @ data.images.vectors.T, k)  # (q, k)
    t2i = _scale_queries(
        net,
        data,
        np.repeat(captions, k),
        images.ravel(),
        [[keys[c] in data.image_keys[i] for i in row] for c, row in zip(captions, images)],
    )
    pictures = rng.choice(len(data.pairs.images), min(config.calibrate_lines, len(data.pairs.images)), replace=False)
    distinct = np.unique(data.caption_rows)
    texts = distinct[
        _top_k(data.images.vectors[pictures] @ data.texts.vectors[distinct].T, min(k, len(distinct)))
    ]  # (q, k)
    i2t = _scale_queries(
        net,
        data,
        texts.ravel(),
        np.repeat(pictures, texts.shape[1]),
        [[keys[t] in data.image_keys[p] for t in row] for p, row in zip(pictures, texts)],
    )
    shares = {scale: round((t2i(scale) + i2t(scale)) / 2, 4) for scale in SPATIAL_SCALES}
    best = max(SPATIAL_SCALES, key=lambda scale: (shares[scale], scale))
    readout.scale.fill_(best)
    return {
        "scale": best,
        "first_true": {str(scale): share for scale, share in shares.items()},
        "queries": len(lines) + len(pictures),
        "k": k,
    }


def _scale_queries(
    net: RerankerNet, data: _Data, text_rows: np.ndarray, image_rows: np.ndarray, hits: list[list[bool]]
) -> Callable[[float], float]:
    """``scale -> share of queries whose top candidate is a hit``, from one pass with and without the readout."""
    readout, queries = net.head.spatial, len(hits)
    assert isinstance(readout, SpatialReadout)  # calibrate_spatial calls this only for heads that have one
    readout.scale.fill_(0.0)
    base = net_scorer(net, data.texts, data.images)(text_rows, image_rows).reshape(queries, -1)
    readout.scale.fill_(1.0)
    spatial = net_scorer(net, data.texts, data.images)(text_rows, image_rows).reshape(queries, -1) - base
    hit = np.asarray(hits, dtype=bool)
    return lambda scale: float(hit[np.arange(queries), np.argmax(base + scale * spatial, axis=1)].mean())


def _top_k(scores: np.ndarray, k: int) -> np.ndarray:
    """Column indices of each row's ``k`` highest scores (any order)."""
    return np.argpartition(-scores, k - 1, axis=1)[:, :k]


def _learning_rate(config: RerankTrainConfig, step: int) -> float:
    if step < config.warmup_steps:
        return config.lr * (step + 1) / config.warmup_steps
    progress = (step - config.warmup_steps) / max(1, config.steps - config.warmup_steps)
    return config.lr * (0.01 + 0.99 * 0.5 * (1 + math.cos(math.pi * min(1.0, progress))))


def _optimizer(net: RerankerNet, config: RerankTrainConfig) -> torch.optim.Optimizer:
    decay = [p for p in net.parameters() if p.ndim >= 2]
    rest = [p for p in net.parameters() if p.ndim < 2]
    return torch.optim.AdamW(
        [{"params": decay, "weight_decay": config.weight_decay}, {"params": rest, "weight_decay": 0.0}], lr=config.lr
    )
