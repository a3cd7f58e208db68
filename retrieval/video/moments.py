"""Consecutive samples grouped into moments: a scene cut or a changed picture starts a new one.

A moment runs from its first sample to the next moment's first sample (the last one to the
end of the video), so the moments of a video tile its timeline and playing from a
moment's start shows the frame it was found by. Samples that repeat the moment's first
(near-identical signatures) only extend it; they are never embedded.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

from retrieval.video.frames import Sample
from retrieval.video.scenes import SceneConfig

__all__ = ["Moment", "MomentGrouper"]


@dataclass(frozen=True)
class Moment:
    """A stretch of a video shown by one frame."""

    start: float  # seconds: the time of its frame
    end: float  # seconds: where the next moment starts (or the video ends)
    sample: Sample  # the frame it is embedded from (its first)


class MomentGrouper:
    """Feed samples in time order; get each moment once the next one has started."""

    def __init__(self, scenes: SceneConfig) -> None:
        self.scenes = scenes
        self._open: Sample | None = None  # first sample of the moment still growing
        self._last = 0.0  # time of the last sample seen

    @property
    def last_time(self) -> float:
        """Time of the last sample seen (0.0 before any)."""
        return self._last

    @property
    def open_start(self) -> float | None:
        """Start of the moment still growing (None before the first sample)."""
        return None if self._open is None else self._open.time

    def add(self, sample: Sample) -> Moment | None:
        """Take the next sample; return the moment it closed, if it started a new one."""
        self._last = max(self._last, sample.time)
        if self._open is not None and not sample.cut and self.scenes.is_same(self._open.signature, sample.signature):
            return None
        closed = None if self._open is None else Moment(self._open.time, sample.time, self._open)
        self._open = sample
        return closed

    def finish(self, duration: float) -> Iterator[Moment]:
        """Close the last moment at ``duration`` (or just after its last sample when the container said less)."""
        if self._open is not None:
            end = max(duration, self._last, self._open.time)
            yield Moment(self._open.time, end, self._open)
            self._open = None
