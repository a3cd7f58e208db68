"""What a video container says about its video: duration, codec, size, rotation and capture date.

Phones write the capture moment into the container's tags: ``creation_time`` in UTC (every
MP4/MOV muxer), and on Apple devices also ``com.apple.quicktime.creationdate`` with the
local offset. Photos carry EXIF's local wall-clock time, so a video's date is made the same:
the Apple tag's own wall-clock time, else the UTC time in this machine's time zone.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

__all__ = ["VideoInfo", "capture_time", "pick_stream", "probe", "upright_size"]

_LOCAL_TAGS = ("com.apple.quicktime.creationdate",)  # wall-clock time with the capture's own offset
_UTC_TAGS = ("creation_time", "date")  # UTC (or naive, taken as UTC)
_FIRST_YEAR = 1971  # MP4's zero date (1904) and the Unix epoch mean "not set"
_OFFSET = re.compile(r"([+-])(\d{2}):?(\d{2})$")


@dataclass(frozen=True)
class VideoInfo:
    """The video stream of a file, as its container describes it."""

    duration: float  # seconds (0.0 when the container does not say)
    codec: str  # FFmpeg decoder name, e.g. "h264", "hevc", "vp9"
    width: int  # pixels, upright (after rotation)
    height: int  # pixels, upright (after rotation)
    fps: float  # average frames per second (0.0 when unknown)
    rotation: int  # counter-clockwise degrees that turn a decoded frame upright: 0, 90, 180 or 270
    captured_at: datetime | None  # naive local time of capture from the container's tags
    container: str  # FFmpeg demuxer name, e.g. "mov,mp4,m4a,3gp,3g2,mj2"


def pick_stream(container: Any) -> Any:
    """The container's main video stream (cover art and thumbnails left out), or None."""
    import av

    for stream in container.streams.video:
        if not stream.disposition & av.stream.Disposition.attached_pic:
            return stream
    return None


def probe(container: object, stream: object, rotation: int = 0) -> VideoInfo:
    """The :class:`VideoInfo` of ``stream`` in an open PyAV ``container``.

    ``rotation`` is what the first decoded frame said (PyAV reports it per frame).
    """
    duration = 0.0
    if stream.duration is not None and stream.time_base:  # type: ignore[attr-defined]
        duration = float(stream.duration * stream.time_base)  # type: ignore[attr-defined]
    elif container.duration is not None:  # type: ignore[attr-defined]
        duration = container.duration / 1_000_000  # type: ignore[attr-defined]
    rate = stream.average_rate or stream.guessed_rate  # type: ignore[attr-defined]
    context = stream.codec_context  # type: ignore[attr-defined]
    width, height = upright_size(context.width, context.height, rotation)
    tags = {**dict(stream.metadata), **dict(container.metadata)}  # type: ignore[attr-defined]
    return VideoInfo(
        duration=max(0.0, duration),
        codec=context.name,
        width=width,
        height=height,
        fps=float(rate) if rate else 0.0,
        rotation=rotation % 360,
        captured_at=capture_time(tags),
        container=container.format.name,  # type: ignore[attr-defined]
    )


def upright_size(width: int, height: int, rotation: int) -> tuple[int, int]:
    """``(width, height)`` of a frame turned upright by ``rotation`` degrees."""
    return (height, width) if rotation % 180 == 90 else (width, height)


def capture_time(tags: dict[str, str]) -> datetime | None:
    """The capture moment in ``tags`` as naive local time, or None when no tag holds a plausible one."""
    lowered = {key.lower(): value for key, value in tags.items()}
    for key in _LOCAL_TAGS:
        moment = _parse(lowered.get(key))
        if moment is not None:
            return moment.replace(tzinfo=None)  # the wall clock where it was taken, like EXIF
    for key in _UTC_TAGS:
        moment = _parse(lowered.get(key))
        if moment is not None:
            aware = moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc)
            try:
                return aware.astimezone().replace(tzinfo=None)
            except (OverflowError, OSError, ValueError):
                return None
    return None


def _parse(value: str | None) -> datetime | None:
    if not value:
        return None
    text = value.strip().replace(" ", "T", 1)
    text = text[:-1] + "+00:00" if text.endswith("Z") else _OFFSET.sub(r"\1\2:\3", text)
    text = re.sub(r"\.(\d{6})\d+", r".\1", text)  # Python takes at most microseconds
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        return None
    return moment if _FIRST_YEAR <= moment.year <= 9999 else None
