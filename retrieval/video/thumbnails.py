"""A moment's thumbnail: the frame shown at its start, upright, encoded as PNG or JPEG."""

from __future__ import annotations

import io
from pathlib import Path
from typing import BinaryIO

__all__ = ["frame_bytes", "frame_png"]


def frame_bytes(
    source: str | Path | BinaryIO, seconds: float, side: int = 160, format: str = "JPEG", quality: int = 85
) -> bytes:
    """The frame shown at ``seconds`` in the video at ``source`` (a path or an open binary file),
    at most ``side`` px on its longer side, encoded as ``format``.

    Raises:
        MissingDependencyError: PyAV is not installed.
        VideoDecodeError: the video cannot be decoded there.
    """
    from retrieval.video.frames import VideoReader

    with VideoReader(source) as reader:
        image = reader.frame_at(seconds, side)
    image.thumbnail((side, side))
    buffer = io.BytesIO()
    image.save(buffer, format=format, **({"optimize": False} if format == "PNG" else {"quality": quality}))
    return buffer.getvalue()


def frame_png(path: str | Path, seconds: float, side: int = 160) -> bytes:
    """A PNG of the frame at ``seconds`` (see :func:`frame_bytes`)."""
    return frame_bytes(path, seconds, side, "PNG")
