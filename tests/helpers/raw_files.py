"""Camera RAW files written by hand: a minimal DNG (TIFF) with an embedded JPEG preview.

No RAW file can be downloaded here, so this writes the smallest DNG LibRaw accepts: IFD0
holds the preview (NewSubFileType 1, JPEG, YCbCr), the camera's make and model, the
orientation, DNG version tags and an EXIF IFD with the capture time; a SubIFD holds 12-bit
Bayer sensor data (random). rawpy reads it as a RAW and returns the preview from
``extract_thumb``; ``postprocess`` demosaics the sensor data.
"""

from __future__ import annotations

import io
import struct
from pathlib import Path

import numpy as np
from PIL import Image

__all__ = ["make_dng"]

_SHORT, _LONG, _ASCII, _BYTE, _SRATIONAL = 3, 4, 2, 1, 10


def _short(*v: int) -> tuple[int, int, bytes]:
    return _SHORT, len(v), struct.pack(f"<{len(v)}H", *v)


def _long(*v: int) -> tuple[int, int, bytes]:
    return _LONG, len(v), struct.pack(f"<{len(v)}I", *v)


def _ascii(text: str) -> tuple[int, int, bytes]:
    data = text.encode() + b"\0"
    return _ASCII, len(data), data


def _bytes(*v: int) -> tuple[int, int, bytes]:
    return _BYTE, len(v), bytes(v)


def _srational(*v: int) -> tuple[int, int, bytes]:
    return _SRATIONAL, len(v) // 2, struct.pack(f"<{len(v)}i", *v)


def _ifd(entries: dict[int, tuple[int, int, bytes]], offset: int) -> bytes:
    """One IFD laid at ``offset``, its values longer than 4 bytes right after it."""
    size = 2 + 12 * len(entries) + 4
    head, tail = bytearray(struct.pack("<H", len(entries))), bytearray()
    for tag in sorted(entries):
        kind, count, data = entries[tag]
        if len(data) <= 4:
            head += struct.pack("<HHI", tag, kind, count) + data.ljust(4, b"\0")
        else:
            head += struct.pack("<HHII", tag, kind, count, offset + size + len(tail))
            tail += data + b"\0" * (len(data) % 2)
    return bytes(head + struct.pack("<I", 0) + tail)


def make_dng(
    path: Path,
    preview: Image.Image,
    sensor: tuple[int, int] = (96, 64),
    orientation: int = 1,
    make: str = "XmrTest",
    model: str = "Hand DNG",
    taken: str = "2023:07:14 09:30:00",
) -> Path:
    """Write a DNG at ``path`` whose embedded preview is ``preview`` (JPEG, quality 92)."""
    buffer = io.BytesIO()
    preview.convert("RGB").save(buffer, "JPEG", quality=92)
    jpeg = buffer.getvalue()
    width, height = sensor
    bayer = np.random.default_rng(0).integers(0, 4095, (height, width)).astype("<u2").tobytes()
    jpeg_at = 8
    bayer_at = jpeg_at + len(jpeg) + len(jpeg) % 2
    ifd0_at = bayer_at + len(bayer)

    def ifd0(sub_at: int, exif_at: int) -> dict[int, tuple[int, int, bytes]]:
        return {
            254: _long(1),  # a reduced-resolution image: the preview
            256: _long(preview.width),
            257: _long(preview.height),
            258: _short(8, 8, 8),
            259: _short(7),  # JPEG
            262: _short(6),  # YCbCr
            271: _ascii(make),
            272: _ascii(model),
            273: _long(jpeg_at),
            274: _short(orientation),
            277: _short(3),
            278: _long(preview.height),
            279: _long(len(jpeg)),
            284: _short(1),
            330: _long(sub_at),  # SubIFDs: the sensor data
            34665: _long(exif_at),  # the EXIF IFD
            50706: _bytes(1, 4, 0, 0),  # DNGVersion
            50707: _bytes(1, 1, 0, 0),
            50708: _ascii(f"{make} {model}"),
            50721: _srational(1, 1, 0, 1, 0, 1, 0, 1, 1, 1, 0, 1, 0, 1, 0, 1, 1, 1),  # ColorMatrix1: identity
            50778: _short(21),  # D65
        }

    probe = _ifd(ifd0(0, 0), ifd0_at)
    sub_at = ifd0_at + len(probe)
    sub = _ifd(
        {
            254: _long(0),  # the full-resolution image
            256: _long(width),
            257: _long(height),
            258: _short(16),
            259: _short(1),
            262: _short(32803),  # colour filter array
            273: _long(bayer_at),
            277: _short(1),
            278: _long(height),
            279: _long(len(bayer)),
            284: _short(1),
            33421: _short(2, 2),
            33422: _bytes(0, 1, 1, 2),  # RGGB
            50717: _long(4095),
        },
        sub_at,
    )
    exif_at = sub_at + len(sub)
    exif = _ifd({36867: _ascii(taken)}, exif_at)  # DateTimeOriginal
    data = b"II*\0" + struct.pack("<I", ifd0_at) + jpeg + b"\0" * (len(jpeg) % 2) + bayer
    data += _ifd(ifd0(sub_at, exif_at), ifd0_at) + sub + exif
    path.write_bytes(data)
    return path
