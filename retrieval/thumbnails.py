"""Small PNG thumbnails of catalogued images (orientation applied), for previews."""

from __future__ import annotations

import io
from pathlib import Path

from retrieval.decode import DecodeConfig, decode_file


def thumbnail_png(path: str | Path, side: int = 160) -> bytes:
    """A PNG at most ``side`` pixels on its longer side.

    Raises:
        ImageDecodeError: the file can no longer be read.
    """
    image = decode_file(path, DecodeConfig(draft_side=side)).image
    image.thumbnail((side, side))
    buffer = io.BytesIO()
    image.save(buffer, format="PNG", optimize=False)
    return buffer.getvalue()
