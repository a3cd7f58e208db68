"""Small thumbnails of catalogued images (EXIF orientation applied), for previews and the web page."""

from __future__ import annotations

import io
from pathlib import Path

from retrieval.images.decode import DecodeConfig, decode_bytes, decode_file


def thumbnail_bytes(
    source: str | Path | bytes, side: int = 160, format: str = "PNG", quality: int = 85, name: str = ""
) -> bytes:
    """The image at ``source`` (a path, or the file's bytes) encoded as ``format`` ("PNG",
    "JPEG" or "WEBP"), at most ``side`` px on its longer side. ``name``: the file's name
    when ``source`` is bytes (RAW files are told by their extension).

    Raises:
        ImageDecodeError: the file can no longer be read.
    """
    config = DecodeConfig(draft_side=side, perceptual_hash=False)
    image = (decode_bytes(source, config, name) if isinstance(source, bytes) else decode_file(source, config)).image
    image.thumbnail((side, side))
    buffer = io.BytesIO()
    options = {"optimize": False} if format == "PNG" else {"quality": quality}
    image.save(buffer, format=format, **options)
    return buffer.getvalue()


def thumbnail_png(path: str | Path, side: int = 160) -> bytes:
    """A PNG at most ``side`` pixels on its longer side (see :func:`thumbnail_bytes`)."""
    return thumbnail_bytes(path, side, "PNG")
