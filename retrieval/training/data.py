"""Training batches from a pair set: cached decoded images, caption-safe augmentation.

Augmentation never breaks a caption: no colour jitter (colours are words), small
translations only (relations survive), and a horizontal flip swaps "left" and "right"
in the caption and its negatives so the pair stays true.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np

from retrieval.images.decode import decode_file
from retrieval.ingest.pairs import PairSet

_CONVERSE = (
    (re.compile(r"^(.+) to the right of (.+)$"), "{1} to the left of {0}"),
    (re.compile(r"^(.+) below (.+)$"), "{1} above {0}"),
)


def canonical_caption(text: str) -> str:
    """One spelling per scene: "X to the right of Y" -> "Y to the left of X", "X below Y" -> "Y above X".

    Used to mask captions that describe the same picture, so they are not trained apart.
    """
    for pattern, template in _CONVERSE:
        match = pattern.match(text)
        if match:
            return template.format(*match.groups())
    return text


_SPATIAL = re.compile(r"\b(left|right|above|below)\b")
_LEFT_RIGHT = re.compile(r"\b(left|right)\b")
_OPPOSITE = {"left": "right", "right": "left", "above": "below", "below": "above"}


def _swap(pattern: re.Pattern[str], text: str) -> str:
    return pattern.sub(lambda m: _OPPOSITE[m.group(1)], text)


def reverse_relations(text: str) -> str:
    """The caption with every spatial relation reversed ("left" <-> "right", "above" <-> "below").

    False for the caption's image unless the scene is symmetric: a negative that differs from
    the truth only in where things are (returns ``text`` itself when it names no relation).
    """
    return _swap(_SPATIAL, text)


def mirror_caption(text: str) -> str:
    """The caption of the horizontally flipped image: "left" and "right" swapped."""
    return _swap(_LEFT_RIGHT, text)


@dataclass(frozen=True)
class Batch:
    pixels: object  # torch.Tensor (B, 3, S, S) float, normalised
    captions: list[str]  # B captions, mirrored where the image was flipped
    negatives: list[str]  # hard negatives of the batch, flattened
    negative_owner: list[int]  # batch row each negative belongs to


class ImageCache:
    """Decoded images as uint8 ``(3, S, S)`` arrays, kept in memory up to a budget."""

    def __init__(self, paths: Sequence, size: int, budget_bytes: int = 4 << 30, workers: int = 2) -> None:
        self.paths = list(paths)
        self.size = size
        self._cache: dict[int, np.ndarray] = {}
        self._capacity = max(0, budget_bytes // (3 * size * size))
        self._pool = ThreadPoolExecutor(workers, thread_name_prefix="xmr-train-decode")

    def _load(self, index: int) -> np.ndarray:
        from PIL import Image

        image = decode_file(self.paths[index]).image
        if image.size != (self.size, self.size):  # shortest side to S, then centre crop
            scale = self.size / min(image.size)
            w, h = max(self.size, round(image.width * scale)), max(self.size, round(image.height * scale))
            image = image.resize((w, h), Image.Resampling.BICUBIC)
            left, top = (w - self.size) // 2, (h - self.size) // 2
            image = image.crop((left, top, left + self.size, top + self.size))
        return np.asarray(image, dtype=np.uint8).transpose(2, 0, 1).copy()

    def get(self, indices: Sequence[int]) -> np.ndarray:
        """``(B, 3, S, S)`` uint8 images, decoded in parallel when not cached."""
        missing = [i for i in dict.fromkeys(indices) if i not in self._cache]
        loaded = dict(zip(missing, self._pool.map(self._load, missing)))
        for i, array in loaded.items():
            if len(self._cache) < self._capacity:
                self._cache[i] = array
        return np.stack([self._cache[i] if i in self._cache else loaded[i] for i in indices])

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)


def step_order(count: int, batch_size: int, step: int, seed: int) -> np.ndarray:
    """Line indices of training step ``step``: epoch-wise seeded permutations, no partial batch."""
    per_epoch = max(1, count // batch_size)
    epoch, within = divmod(step, per_epoch)
    order = np.random.default_rng([seed, epoch]).permutation(count)
    return order[within * batch_size : (within + 1) * batch_size]


def make_batch(
    pairs: PairSet,
    cache: ImageCache,
    lines: np.ndarray,
    step: int,
    seed: int,
    mean: Sequence[float],
    std: Sequence[float],
    augment: bool = True,
) -> Batch:
    """Build the batch of ``lines`` with seeded, caption-safe augmentation."""
    import torch

    rng = np.random.default_rng([seed, step, 7])
    images = cache.get([pairs.caption_image[j] for j in lines]).astype(np.float32) / 255.0  # (B, 3, S, S)
    captions = [pairs.captions[j] for j in lines]
    negatives = [list(pairs.negatives[j]) for j in lines]
    if augment:
        flips = rng.random(len(lines)) < 0.5
        images[flips] = images[flips][..., ::-1]
        for row in np.flatnonzero(flips):
            captions[row] = mirror_caption(captions[row])
            negatives[row] = [mirror_caption(n) for n in negatives[row]]
        images = _shift(images, rng, max(1, cache.size // 20))
    pixels = torch.from_numpy(np.ascontiguousarray(images))
    pixels = (pixels - torch.tensor(mean).view(1, 3, 1, 1)) / torch.tensor(std).view(1, 3, 1, 1)
    flat = [n for negs in negatives for n in negs]
    owner = [row for row, negs in enumerate(negatives) for _ in negs]
    return Batch(pixels, captions, flat, owner)


def _shift(images: np.ndarray, rng: np.random.Generator, limit: int) -> np.ndarray:
    """Translate each image by up to ``limit`` pixels, filling with its edge (the background)."""
    size = images.shape[-1]
    padded = np.pad(images, ((0, 0), (0, 0), (limit, limit), (limit, limit)), mode="edge")
    out = np.empty_like(images)
    offsets = rng.integers(0, 2 * limit + 1, size=(len(images), 2))
    for row, (dy, dx) in enumerate(offsets):
        out[row] = padded[row, :, dy : dy + size, dx : dx + size]
    return out
