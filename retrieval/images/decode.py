"""Image decoding: bytes on disk -> 8-bit RGB PIL image plus metadata, ready for a preprocess.

Only Pillow, numpy and the standard library are used here (never torch), so decoding can
run in worker processes and in tools that do not load a model. HEIF/HEIC support comes
from the optional ``pillow-heif`` package, imported lazily the first time it is needed.
"""

from __future__ import annotations

import functools
import hashlib
import io
import os
import re
import warnings
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import BinaryIO

import numpy as np
from PIL import Image, UnidentifiedImageError, features

from index.files import open_regular
from index.records import ImageMeta
from retrieval.errors import ImageDecodeError
from retrieval.images.exif import (
    PILLOW_ERRORS,
    orientation,
    read_exif,
    read_meta,
    upright,
)
from retrieval.images.phash import perceptual_hash
from retrieval.images.raw import RAW_EXTENSIONS, decode_raw, is_raw, raw_available

__all__ = [
    "IMAGE_EXTENSIONS",
    "DecodeConfig",
    "Decoded",
    "ImageDecodeError",
    "decode_bytes",
    "decode_file",
    "decode_handle",
    "hash_file",
    "hash_file_checked",
    "image_extensions",
    "image_formats",
    "to_rgb",
]

# Computed on first access through the module __getattr__ below, so that importing this
# module does not import pillow_heif.
IMAGE_EXTENSIONS: frozenset[str]

_BASE_EXTENSIONS = frozenset(
    {".jpg", ".jpeg", ".png", ".webp", ".gif", ".bmp", ".tif", ".tiff"} | {".pnm", ".ppm", ".pgm", ".pbm"}
)
_HEIF_EXTENSIONS = frozenset({".heic", ".heif"})
# JPEG 2000, read where this Pillow was built with OpenJPEG (the PyPI wheels are).
_JPEG2000_EXTENSIONS = frozenset({".jp2", ".j2k", ".jpx", ".jpf", ".j2c"})
# Pillow formats of those extensions (MPO opens through JPEG, DIB is headerless BMP). No other
# Pillow plugin ever sees our bytes: EPS, for one, runs Ghostscript on whatever it is given.
_BASE_FORMATS = ("JPEG", "MPO", "PNG", "WEBP", "GIF", "BMP", "DIB", "TIFF", "PPM")
# ISO-BMFF brands of HEIF stills, to explain a failure when pillow-heif is missing.
_HEIF_BRANDS = frozenset({b"heic", b"heix", b"heim", b"heis", b"hevc", b"hevx", b"mif1", b"msf1"})
_HASH_CHUNK = 1 << 20  # 1 MiB
_WHITE = (255, 255, 255)
_ALPHA_MODES = frozenset({"RGBA", "RGBa", "LA", "La", "PA"})
# Errors Pillow raises for files it recognised but cannot decode (fuzzing shows all of them).
_CORRUPT_ERRORS = PILLOW_ERRORS


@dataclass(frozen=True)
class DecodeConfig:
    """How to decode images."""

    max_pixels: int = 180_000_000  # refuse images whose header declares more pixels
    # Refuse images that would decode to more pixels than this, after JPEG draft (PNG, WebP,
    # GIF, TIFF and HEIF decode at full size): a 13000x13000 PNG of 160 KB takes 1.2-2 GB to
    # decode, about 8-13 bytes a pixel at the peak, so this bounds memory per decoder thread.
    max_decoded_pixels: int = 50_000_000
    max_file_bytes: int = 512 * 2**20  # refuse larger files before reading a byte of them
    draft_side: int = 448  # JPEG draft keeps the shorter side >= this; 0 disables draft
    perceptual_hash: bool = True  # fill meta.phash (about 1 ms a photo; duplicates need it, queries do not)


@dataclass(frozen=True)
class Decoded:
    """A decoded image, its metadata and the hash of the file's bytes."""

    image: Image.Image  # mode "RGB", EXIF orientation applied, possibly reduced by draft
    meta: ImageMeta  # full-resolution size after orientation, format, EXIF fields
    content_hash: str  # blake2b-128 hex of the file's bytes
    status: os.stat_result | None = None  # fstat of the file read (size, mtime, device, inode); None for bytes


@functools.cache
def _register_heif() -> bool:
    """Register pillow-heif's opener once; return whether HEIF can be decoded."""
    try:
        import pillow_heif
    except ImportError:
        return False
    pillow_heif.register_heif_opener()
    return True


@functools.cache
def image_extensions() -> frozenset[str]:
    """Return the lower-case file extensions (with dot) that :func:`decode_file` can read.

    The set always holds the formats Pillow reads natively; ``.heic``/``.heif`` are added
    when pillow-heif is installed (its opener is registered here, once), ``.avif`` when
    this Pillow build can open AVIF, the JPEG 2000 ones when it has OpenJPEG, and the camera RAW
    extensions when rawpy is installed
    (:mod:`retrieval.images.raw`).
    """
    extensions = set(_BASE_EXTENSIONS)
    if raw_available():
        extensions |= RAW_EXTENSIONS
    if _register_heif():
        extensions |= _HEIF_EXTENSIONS
    if features.check("jpg_2000"):
        extensions |= _JPEG2000_EXTENSIONS
    if features.check("avif") and ".avif" in Image.registered_extensions():
        extensions.add(".avif")
    return frozenset(extensions)


@functools.cache
def image_formats() -> tuple[str, ...]:
    """Return the Pillow format names :func:`decode_bytes` opens: those of :func:`image_extensions`.

    Bytes in any other format (EPS, PSD, ICO, ...) are "not an image file (or an unsupported
    format)", whatever the file is named.
    """
    wanted = list(_BASE_FORMATS)
    # The same tests as image_extensions(), without its RAW check: RAW files never reach Pillow
    # whole, and rawpy's import has no business in decoding a JPEG.
    if _register_heif():  # registers pillow-heif's opener when it is installed
        wanted.append("HEIF")
    if features.check("avif") and ".avif" in Image.registered_extensions():
        wanted.append("AVIF")
    if features.check("jpg_2000"):  # as image_extensions() adds the JPEG 2000 ones
        wanted.append("JPEG2000")
    return _openable(tuple(wanted))


@functools.cache
def _plain_formats() -> tuple[str, ...]:
    """The formats of bytes that are not an ISO-BMFF container: never HEIF or AVIF, so deciding
    them needs no pillow-heif import (a search by an example JPEG stays light)."""
    return _openable(_BASE_FORMATS + (("JPEG2000",) if features.check("jpg_2000") else ()))


def _openable(wanted: tuple[str, ...]) -> tuple[str, ...]:
    Image.init()  # load every plugin, so that OPEN lists all this Pillow build can open
    return tuple(name for name in wanted if name in Image.OPEN)  # Image.open raises KeyError on others


def __getattr__(name: str) -> frozenset[str]:
    # PEP 562: IMAGE_EXTENSIONS is computed on first use, not at import.
    if name == "IMAGE_EXTENSIONS":
        return image_extensions()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def hash_file(path: str | Path) -> str:
    """Return the blake2b-128 hex digest of a file's bytes, read in 1 MiB chunks.

    Equal to ``Decoded.content_hash`` for the same file. ``OSError`` from opening or reading
    propagates (:class:`NotRegularFileError` for a FIFO, device or folder: never blocks).
    """
    return hash_file_checked(path)[0]


def hash_file_checked(path: str | Path) -> tuple[str, os.stat_result]:
    """:func:`hash_file`, and ``os.fstat`` of the descriptor it read (which file, exactly)."""
    handle, status = open_regular(path)
    with handle:
        return _hash_handle(handle), status


def _hash_handle(handle: BinaryIO) -> str:
    """blake2b-128 of the whole file behind ``handle``, streamed from its start."""
    digest = hashlib.blake2b(digest_size=16)
    handle.seek(0)
    while chunk := handle.read(_HASH_CHUNK):
        digest.update(chunk)
    return digest.hexdigest()


def decode_file(path: str | Path, config: DecodeConfig = DecodeConfig()) -> Decoded:
    """Open a file (a regular file only, without blocking), hash it and decode it (see :func:`decode_handle`).

    Raises:
        ImageDecodeError: the file cannot be read ("cannot read file: ..."; a FIFO or device
            is one), is larger than ``config.max_file_bytes``, or cannot be decoded.
    """
    try:
        handle, status = open_regular(path)
    except OSError as exc:
        raise ImageDecodeError(f"cannot read file: {exc}") from exc
    with handle:
        return decode_handle(handle, status, config, name=str(path))


def decode_handle(
    handle: BinaryIO, status: os.stat_result, config: DecodeConfig = DecodeConfig(), name: str = ""
) -> Decoded:
    """Decode an open regular file whose ``os.fstat`` is ``status``; see :func:`decode_bytes` (and its ``name``).

    Memory stays bounded whatever the file holds: its size is checked before any byte is
    read, the header's pixel counts before any pixel is decoded, and the bytes are decoded
    and hashed from the file, never held whole. The hash covers the whole file, as
    :func:`hash_file` does.

    Raises:
        ImageDecodeError: empty, larger than ``config.max_file_bytes``, not an image, too many
            pixels, truncated or corrupt, or changed while it was read.
    """
    if status.st_size == 0:
        raise ImageDecodeError("empty file")
    if status.st_size > config.max_file_bytes:
        raise ImageDecodeError(
            f"file is {status.st_size / 2**20:,.0f} MiB, over the {config.max_file_bytes / 2**20:g} MiB limit "
            "(DecodeConfig.max_file_bytes); not read"
        )
    if name and is_raw(name):  # rawpy reads bytes: a RAW file is read whole (within max_file_bytes)
        try:
            decoded = decode_bytes(handle.read(), config, name)
        except OSError as exc:
            raise ImageDecodeError(f"cannot read file: {exc}") from exc
        image, meta, content_hash = decoded.image, decoded.meta, decoded.content_hash
    else:
        image, meta = _decode_source(handle, config, lambda: _head(handle))
        try:
            content_hash = _hash_handle(handle)
        except OSError as exc:
            raise ImageDecodeError(f"cannot read file: {exc}") from exc
    try:
        after = os.fstat(handle.fileno())
    except OSError as exc:
        raise ImageDecodeError(f"cannot read file: {exc}") from exc
    if (after.st_size, after.st_mtime_ns) != (status.st_size, status.st_mtime_ns):
        raise ImageDecodeError("the file changed while it was read; it is read again on the next run")
    return Decoded(image, meta, content_hash, status)


def _head(handle: BinaryIO) -> bytes:
    handle.seek(0)
    return handle.read(16)


def decode_bytes(data: bytes, config: DecodeConfig = DecodeConfig(), name: str = "") -> Decoded:
    """Decode an encoded image into 8-bit RGB with EXIF orientation applied.

    ``name`` is the file's name when known: camera RAW files are told by their extension
    (most are TIFF inside) and read through their embedded preview (:mod:`retrieval.images.raw`).

    Large JPEGs are decoded in draft mode (shorter side kept >= ``config.draft_side``);
    transparency is composited over white; 16/32-bit images are scaled to 0..255;
    animated images give their first frame. ``meta`` describes the full-resolution image.

    Raises:
        ImageDecodeError: empty data, not an image, unsupported format, truncated or
            corrupt data, or more pixels than ``config.max_pixels`` (declared) or
            ``config.max_decoded_pixels`` (to decode).
    """
    if not data:
        raise ImageDecodeError("empty file")
    if name and is_raw(name):
        image, meta = decode_raw(data, lambda preview: decode_bytes(preview, config), name)
        return Decoded(image, meta, hashlib.blake2b(data, digest_size=16).hexdigest())
    image, meta = _decode_source(io.BytesIO(data), config, lambda: data[:16])
    return Decoded(image, meta, hashlib.blake2b(data, digest_size=16).hexdigest())


def _decode_source(source: BinaryIO, config: DecodeConfig, head: Callable[[], bytes]) -> tuple[Image.Image, ImageMeta]:
    """Open ``source`` with the formats xmr reads and decode it; Pillow's errors become ImageDecodeError."""
    try:
        # HEIF and AVIF files are ISO-BMFF containers ("ftyp" at byte 4); other bytes cannot be
        # either, so their formats are decided without pillow-heif or rawpy (Image.open seeks to 0).
        formats = image_formats() if head()[4:8] == b"ftyp" else _plain_formats()
        with warnings.catch_warnings():
            # Our own max_pixels check replaces Pillow's decompression-bomb warning.
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(source, formats=formats) as img:
                return _decode_opened(img, config)
    except ImageDecodeError:
        raise
    except Image.DecompressionBombError as exc:
        raise ImageDecodeError(_pillow_bomb_message(exc, config.max_pixels)) from exc
    except UnidentifiedImageError as exc:
        raise ImageDecodeError(_unidentified_message(head())) from exc
    except _CORRUPT_ERRORS as exc:
        raise ImageDecodeError(f"truncated or corrupt image data: {exc}") from exc


def _decode_opened(img: Image.Image, config: DecodeConfig) -> tuple[Image.Image, ImageMeta]:
    """Decode an opened (header-only) image; see :func:`decode_bytes`."""
    width, height = img.size
    if width * height > config.max_pixels:
        raise ImageDecodeError(_too_many_pixels(width, height, config.max_pixels))
    # draft only shrinks by powers of two (1/2..1/8) and is a no-op except for JPEG/MPO;
    # asking for draft_side x draft_side keeps the shorter side >= draft_side.
    if config.draft_side > 0 and min(width, height) >= 2 * config.draft_side:
        img.draft("RGB", (config.draft_side, config.draft_side))
    decoded_w, decoded_h = img.size  # after draft: the pixels decoding will make
    if decoded_w * decoded_h > config.max_decoded_pixels:
        raise ImageDecodeError(
            f"image is {width}x{height} = {width * height / 1e6:.1f} megapixels and {img.format} decodes at full "
            f"size: over the {config.max_decoded_pixels / 1e6:g} megapixel decoding limit "
            "(DecodeConfig.max_decoded_pixels)"
        )
    img.load()  # decode now, so truncated data fails here and not in a later resize
    meta = read_meta(img, (width, height), "unknown")
    rgb = upright(_to_rgb(img), meta.orientation)
    if rgb is img:
        rgb = img.copy()  # closing img destroys its pixels
    if config.perceptual_hash:
        meta = replace(meta, phash=perceptual_hash(rgb))
    return rgb, meta


def to_rgb(img: Image.Image) -> Image.Image:
    """An in-memory PIL image as 8-bit RGB with its EXIF orientation applied (for query images)."""
    return upright(_to_rgb(img), orientation(read_exif(img)))


def _to_rgb(img: Image.Image) -> Image.Image:
    """Convert any Pillow mode to 8-bit RGB (may return ``img`` itself when already RGB)."""
    if img.mode == "I" or img.mode == "F" or img.mode.startswith("I;16"):
        return _scale_to_8bit(img).convert("RGB")
    if img.mode in _ALPHA_MODES or "transparency" in img.info:
        return _flatten_on_white(img.convert("RGBA"))
    if img.mode == "RGB":
        return img
    return img.convert("RGB")  # L, 1, P, CMYK, YCbCr, LAB, HSV, RGBX


def _flatten_on_white(rgba: Image.Image) -> Image.Image:
    # CLIP was trained on opaque photos; white matches how transparent images are viewed.
    background = Image.new("RGB", rgba.size, _WHITE)
    background.paste(rgba, (0, 0), rgba.getchannel("A"))
    return background


def _scale_to_8bit(img: Image.Image) -> Image.Image:
    """Scale a 16/32-bit single-channel image to 8-bit "L".

    Pillow's own convert clips (65535 -> 255 but 300 -> 255 too), so scale instead:
    integers that fit 0..65535 are 16-bit samples, floats within 0..1 are unit samples,
    anything else is stretched from its minimum to its maximum.
    """
    arr = np.asarray(img).astype(np.float32)  # (H, W)
    arr = np.nan_to_num(arr, nan=0.0, posinf=0.0, neginf=0.0)
    lo, hi = (float(arr.min()), float(arr.max())) if arr.size else (0.0, 0.0)
    if img.mode == "F" and lo >= 0.0 and hi <= 1.0:
        lo, hi = 0.0, 1.0
    elif img.mode != "F" and lo >= 0.0 and hi <= 65535.0:
        lo, hi = 0.0, 65535.0
    scaled = (arr - lo) * (255.0 / max(hi - lo, 1e-12))
    return Image.fromarray(np.rint(scaled).clip(0, 255).astype(np.uint8))


def _too_many_pixels(width: int, height: int, limit: int) -> str:
    return (
        f"image is {width}x{height} = {width * height / 1e6:.1f} megapixels, over the {limit / 1e6:g} megapixel limit"
    )


def _pillow_bomb_message(exc: Image.DecompressionBombError, max_pixels: int) -> str:
    # Pillow refuses > 2 * Image.MAX_IMAGE_PIXELS at open, before we see the size; its
    # message carries the pixel count but not the dimensions.
    limit = max_pixels
    if Image.MAX_IMAGE_PIXELS:
        limit = min(limit, 2 * Image.MAX_IMAGE_PIXELS)
    match = re.search(r"\((\d+) pixels\)", str(exc))
    if match is None:
        return f"image is too large to decode safely: {exc}"
    megapixels = int(match[1]) / 1e6
    return f"image is {megapixels:.1f} megapixels, over the {limit / 1e6:g} megapixel limit"


def _unidentified_message(data: bytes) -> str:
    if data[4:8] == b"ftyp" and data[8:12] in _HEIF_BRANDS and not _register_heif():
        return "HEIF/HEIC image, but pillow-heif is not installed; run: pip install 'xmr[heif]'"
    return "not an image file (or an unsupported format)"
