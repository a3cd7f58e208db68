"""Small thumbnails of catalogued images (EXIF orientation applied), for previews and the web page."""

from __future__ import annotations

import io
from pathlib import Path

from retrieval.decode import DecodeConfig, decode_file


def thumbnail_bytes(path: str | Path, side: int = 160, format: str = "PNG", quality: int = 85) -> bytes:
    """The image at ``path`` encoded as ``format`` ("PNG", "JPEG" or "WEBP"), at most ``side`` px on its longer side.

    Raises:
        ImageDecodeError: the file can no longer be read.
    """
    image = decode_file(path, DecodeConfig(draft_side=side)).image
    image.thumbnail((side, side))
    buffer = io.BytesIO()
    options = {"optimize": False} if format == "PNG" else {"quality": quality}
    image.save(buffer, format=format, **options)
    return buffer.getvalue()


def thumbnail_png(path: str | Path, side: int = 160) -> bytes:
    """A PNG at most ``side`` pixels on its longer side (see :func:`thumbnail_bytes`)."""
    return thumbnail_bytes(path, side, "PNG")
