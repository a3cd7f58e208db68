"""Tiny frame signatures, and the two questions asked of them: a scene cut? the same picture?

A signature is a 32x18 RGB thumbnail and an 8-bin histogram per colour channel. Between
two analysed frames:

- the histogram distance (half the L1 distance, per channel, averaged: 0..1) hardly moves
  under pans and zooms over one scene and jumps at a cut to another;
- the pixel distance (mean absolute difference of the thumbnails: 0..1) moves with any
  change in the picture, so it also tells a cut between scenes of the same colours and,
  when small, a frame that repeats another.

The thresholds were measured on slideshows of real photos with pans and zooms (see
benchmarks/README.md): consecutive keyframes 1 s apart within a shot stay below a
histogram distance of 0.17 while cuts reach 0.21 and more.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["SIGNATURE_SIZE", "SceneConfig", "Signature", "histogram_distance", "pixel_distance", "signature_of"]

SIGNATURE_SIZE = (32, 18)  # (width, height) of the signature thumbnail
_BINS = 8  # histogram bins per channel


@dataclass(frozen=True)
class SceneConfig:
    """When consecutive frames are a cut, and when a frame repeats its moment's first."""

    cut_histogram: float = 0.2  # histogram distance at or above which a cut is seen
    cut_pixels: float = 0.3  # pixel distance at or above which a cut is seen whatever the histograms say
    same_pixels: float = 0.02  # below this pixel distance (and same_histogram) a frame repeats another
    same_histogram: float = 0.05  # below this histogram distance (and same_pixels) a frame repeats another

    def is_cut(self, before: Signature, after: Signature) -> bool:
        """Whether ``after`` starts another scene than ``before`` (consecutive analysed frames)."""
        return (
            histogram_distance(before, after) >= self.cut_histogram or pixel_distance(before, after) >= self.cut_pixels
        )

    def is_same(self, first: Signature, later: Signature) -> bool:
        """Whether ``later`` shows what ``first`` showed (near-identical frames collapse into one moment)."""
        return (
            pixel_distance(first, later) < self.same_pixels and histogram_distance(first, later) < self.same_histogram
        )


@dataclass(frozen=True)
class Signature:
    """What scene detection keeps of a frame."""

    thumb: np.ndarray  # float32 (18, 32, 3), 0..1
    histogram: np.ndarray  # float32 (3 * 8,), each channel's 8 bins sum to 1


def signature_of(rgb: np.ndarray) -> Signature:
    """The signature of an ``(18, 32, 3)`` uint8 RGB thumbnail."""
    counts = [np.bincount(rgb[..., channel].ravel() >> 5, minlength=_BINS) for channel in range(3)]
    histogram = np.concatenate(counts).astype(np.float32) / (rgb.shape[0] * rgb.shape[1])
    return Signature(rgb.astype(np.float32) / 255.0, histogram)


def pixel_distance(a: Signature, b: Signature) -> float:
    """Mean absolute difference of the thumbnails, 0 (same) to 1."""
    return float(np.abs(a.thumb - b.thumb).mean())


def histogram_distance(a: Signature, b: Signature) -> float:
    """Half the L1 distance of the channel histograms, averaged over channels: 0 (same) to 1."""
    return float(np.abs(a.histogram - b.histogram).sum() / 6.0)
