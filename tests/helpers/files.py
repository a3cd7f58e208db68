"""Test files: broken images of every kind the decoder must survive, and synthetic JPEGs."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

__all__ = ["add_broken_files", "make_jpeg"]


def add_broken_files(folder: Path, good_jpeg: Path) -> dict[str, Path]:
    """Truncated JPEG, zero bytes, text with an image extension, huge declared size."""
    import struct
    import zlib

    data = good_jpeg.read_bytes()
    files = {
        "truncated": folder / "truncated.jpg",
        "empty": folder / "empty.png",
        "text": folder / "notes.jpg",
        "huge": folder / "huge.png",
    }
    files["truncated"].write_bytes(data[: len(data) // 2])
    files["empty"].write_bytes(b"")
    files["text"].write_text("this is not an image\n")

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    header = struct.pack(">IIBBBBB", 60000, 60000, 8, 2, 0, 0, 0)  # declares 3.6 gigapixels
    files["huge"].write_bytes(
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(b"\x00" * 10))
        + chunk(b"IEND", b"")
    )
    return files


def make_jpeg(path: Path, size: tuple[int, int], seed: int, orientation: int | None = None, **save: object) -> Path:
    """A smooth, asymmetric test picture (gradients and a block) saved as JPEG."""
    rng = np.random.default_rng(seed)
    w, h = size
    y, x = np.mgrid[0:h, 0:w].astype(np.float32)
    pixels = np.stack([x / w * 255, y / h * 255, (x + y) / (w + h) * 255 * rng.uniform(0.3, 1)], axis=-1)
    pixels[: h // 3, : w // 4] = rng.integers(0, 255, 3)
    image = Image.fromarray(pixels.astype(np.uint8))
    if orientation is not None:
        exif = Image.Exif()
        exif[0x0112] = orientation
        save["exif"] = exif
    image.save(path, "JPEG", quality=95, **save)
    return path
