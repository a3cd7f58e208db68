"""How videos are sampled into moments (:class:`SampleConfig`); plain data, imported by the ingest config."""

from __future__ import annotations

from dataclasses import dataclass, field

from retrieval.video.scenes import SceneConfig

__all__ = ["SampleConfig"]

KEYFRAME_MODES = ("auto", "on", "off")


@dataclass(frozen=True)
class SampleConfig:
    """How frames are sampled from a video and grouped into moments."""

    interval: float = 2.0  # seconds between samples within one scene (xmr index --video-interval)
    keyframes: str = "auto"  # "auto": decode only keyframes when they come at least every interval; "on"; "off"
    frame_side: int = 448  # shorter side of the sampled frames (FFmpeg scales before any RGB copy)
    scenes: SceneConfig = field(default_factory=SceneConfig)  # what counts as a cut, and as the same picture
    threads: int = 0  # FFmpeg decoder threads; 0 lets FFmpeg choose

    def __post_init__(self) -> None:
        if not self.interval > 0 or self.interval != self.interval:
            raise ValueError(f"the video sampling interval must be a positive number of seconds, not {self.interval}")
        if self.keyframes not in KEYFRAME_MODES:
            raise ValueError(f"keyframes must be one of {', '.join(KEYFRAME_MODES)}, not {self.keyframes!r}")
        if self.frame_side < 16:
            raise ValueError(f"frame_side must be at least 16 pixels, not {self.frame_side}")
