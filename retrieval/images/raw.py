"""Camera RAW files (DNG, CR2, CR3, NEF, ARW, RAF, ORF, RW2) read through their embedded preview.

Every camera writes a full-size or large JPEG preview into its RAW files, rendered with the
camera's own colour; that is what a photo app shows, and decoding it costs what a JPEG
costs, where demosaicing the sensor data costs seconds. LibRaw (through ``rawpy``, the
extra ``xmr[raw]``) finds the preview; a file without one is demosaiced at half size.
The sensor size (turned upright) is recorded as the image's size: a RAW is the original
of its JPEGs, and the duplicates keeper prefers the most pixels.

Without rawpy the files are not read: scans count and list them (see
:mod:`retrieval.ingest.scan`), and reading one says how to install the extra.
"""

from __future__ import annotations

import functools
import io
import os
from dataclasses import replace
from datetime import datetime

from index.records import ImageMeta
from retrieval.errors import ImageDecodeError

__all__ = ["RAW_EXTENSIONS", "RAW_HINT", "decode_raw", "is_raw", "raw_available"]

RAW_EXTENSIONS = frozenset({".dng", ".cr2", ".cr3", ".nef", ".arw", ".raf", ".orf", ".rw2"})
RAW_HINT = "RAW files are read with rawpy: pip install 'xmr[raw]'"
# LibRaw's "flip" -> the EXIF orientation that turns the image upright.
_FLIP_TO_ORIENTATION = {0: 1, 3: 3, 5: 8, 6: 6}


@functools.cache
def raw_available() -> bool:
    """Whether rawpy (LibRaw) can be imported here."""
    try:
        import rawpy  # noqa: F401
    except ImportError:
        return False
    return True


def is_raw(name: str) -> bool:
    """Whether a file name has a RAW extension (case-insensitive)."""
    return os.path.splitext(name)[1].lower() in RAW_EXTENSIONS


def decode_raw(data: bytes, decode_preview, name: str = "") -> tuple:  # noqa: ANN001 (see below)
    """Decode a RAW file's bytes through its embedded preview.

    ``decode_preview(jpeg_bytes) -> Decoded`` decodes the preview (the caller's JPEG path,
    so limits, draft mode and the perceptual hash are the same as for any JPEG). Returns
    ``(image, meta)``: the upright RGB image and the RAW's metadata (sensor size upright,
    the extension as format, capture time and camera from the RAW's own EXIF).

    Raises:
        ImageDecodeError: rawpy is missing, or LibRaw cannot read the file.
    """
    if not raw_available():
        raise ImageDecodeError(f"{RAW_HINT} (this is a RAW file)")
    import rawpy

    try:
        with rawpy.imread(io.BytesIO(data)) as raw:
            sizes = raw.sizes
            preview = _preview(raw, rawpy)
            taken = _timestamp(raw)
    except (rawpy.LibRawError, ValueError, OSError) as exc:
        raise ImageDecodeError(f"not a RAW file LibRaw can read ({exc.__class__.__name__}: {exc})") from exc
    decoded = decode_preview(preview)
    image, meta = decoded.image, decoded.meta
    orientation = _FLIP_TO_ORIENTATION.get(sizes.flip, 1)
    if meta.orientation in (None, 1) and orientation != 1:  # the preview carries no turn of its own
        from retrieval.images.exif import upright
        from retrieval.images.phash import perceptual_hash

        image = upright(image, orientation)
        meta = replace(meta, phash=perceptual_hash(image) if meta.phash is not None else None)
    width, height = (sizes.height, sizes.width) if orientation in (5, 6, 7, 8) else (sizes.width, sizes.height)
    exif = _tiff_exif(data)
    return image, replace(
        meta,
        width=width,
        height=height,
        format=os.path.splitext(name)[1].lstrip(".").upper() or "RAW",
        orientation=orientation,
        captured_at=exif.captured_at or meta.captured_at or taken,
        camera=exif.camera or meta.camera,
    )


def _preview(raw, rawpy) -> bytes:  # noqa: ANN001 (rawpy objects)
    """The embedded preview as encoded bytes (JPEG, or a bitmap re-encoded as PNG); a file
    without one is demosaiced at half size."""
    import numpy as np
    from PIL import Image

    try:
        thumb = raw.extract_thumb()
    except (rawpy.LibRawNoThumbnailError, rawpy.LibRawUnsupportedThumbnailError):
        pixels = raw.postprocess(half_size=True, use_camera_wb=True, output_bps=8)
        thumb = None
    else:
        if thumb.format == rawpy.ThumbFormat.JPEG:
            return bytes(thumb.data)
        pixels = thumb.data
    buffer = io.BytesIO()
    Image.fromarray(np.asarray(pixels, dtype=np.uint8)).save(buffer, "PNG", compress_level=1)
    return buffer.getvalue()


def _timestamp(raw) -> datetime | None:  # noqa: ANN001
    """LibRaw's capture time, when it found one (the epoch means none)."""
    other = getattr(raw, "other", None)
    taken = getattr(other, "timestamp", None) if other is not None else None
    return taken if isinstance(taken, datetime) and taken.year > 1970 else None


def _tiff_exif(data: bytes) -> ImageMeta:
    """Capture time and camera from a TIFF-based RAW's own EXIF (DNG, CR2, NEF, ARW, ORF...);
    empty for the others. Pillow parses the tags only: no pixel of the RAW is decoded."""
    from PIL import Image

    from retrieval.images.exif import PILLOW_ERRORS, camera, captured_at, read_exif

    empty = ImageMeta(0, 0, "")
    if data[:4] not in (b"II*\x00", b"MM\x00*"):
        return empty
    try:
        with Image.open(io.BytesIO(data), formats=["TIFF"]) as img:
            exif = read_exif(img)
            return ImageMeta(0, 0, "", captured_at=captured_at(exif), camera=camera(exif))
    except (*PILLOW_ERRORS, Image.UnidentifiedImageError):
        return empty
