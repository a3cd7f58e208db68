"""Image decoding: bytes on disk -> 8-bit RGB PIL image plus metadata, ready for a preprocess.

Only Pillow, numpy and the standard library are used here (never torch), so decoding can
run in worker processes and in tools that do not load a model. HEIF/HEIC support comes
from the optional ``pillow-heif`` package, imported lazily the first time it is needed.
"""

from __future__ import annotations

import functools
import hashlib
import io
import re
import warnings
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError, features

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
    "hash_file",
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
    draft_side: int = 448  # JPEG draft keeps the shorter side >= this; 0 disables draft
    perceptual_hash: bool = True  # fill meta.phash (about 1 ms a photo; duplicates need it, queries do not)


@dataclass(frozen=True)
class Decoded:
    """A decoded image, its metadata and the hash of the file's bytes."""

    image: Image.Image  # mode "RGB", EXIF orientation applied, possibly reduced by draft
    meta: ImageMeta  # full-resolution size after orientation, format, EXIF fields
    content_hash: str  # blake2b-128 hex of the file's bytes


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
    when pillow-heif is installed (its opener is registered here, once), and ``.avif``
    when this Pillow build can open AVIF, and the camera RAW extensions when rawpy is installed
    (:mod:`retrieval.images.raw`).
    """
    extensions = set(_BASE_EXTENSIONS)
    if raw_available():
        extensions |= RAW_EXTENSIONS
    if _register_heif():
        extensions |= _HEIF_EXTENSIONS
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
    extensions = image_extensions()  # registers pillow-heif's opener when it is installed
    if extensions & _HEIF_EXTENSIONS:
        wanted.append("HEIF")
    if ".avif" in extensions:
        wanted.append("AVIF")
    Image.init()  # load every plugin, so that OPEN lists all this Pillow build can open
    return tuple(name for name in wanted if name in Image.OPEN)  # Image.open raises KeyError on others


def __getattr__(name: str) -> frozenset[str]:
    # PEP 562: IMAGE_EXTENSIONS is computed on first use, not at import.
    if name == "IMAGE_EXTENSIONS":
        return image_extensions()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def hash_file(path: str | Path) -> str:
    """Return the blake2b-128 hex digest of a file's bytes, read in 1 MiB chunks.

    Equal to ``Decoded.content_hash`` for the same file. ``OSError`` from reading propagates.
    """
    digest = hashlib.blake2b(digest_size=16)
    with open(path, "rb") as f:
        while chunk := f.read(_HASH_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def decode_file(path: str | Path, config: DecodeConfig = DecodeConfig()) -> Decoded:
    """Read a file once, hash its bytes and decode it (see :func:`decode_bytes`).

    Raises:
        ImageDecodeError: the file cannot be read ("cannot read file: ...") or decoded.
    """
    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        raise ImageDecodeError(f"cannot read file: {exc}") from exc
    return decode_bytes(data, config, name=str(path))


def decode_bytes(data: bytes, config: DecodeConfig = DecodeConfig(), name: str = "") -> Decoded:
    """Decode an encoded image into 8-bit RGB with EXIF orientation applied.

    ``name`` is the file's name when known: camera RAW files are told by their extension
    (most are TIFF inside) and read through their embedded preview (:mod:`retrieval.images.raw`).

    Large JPEGs are decoded in draft mode (shorter side kept >= ``config.draft_side``);
    transparency is composited over white; 16/32-bit images are scaled to 0..255;
    animated images give their first frame. ``meta`` describes the full-resolution image.

    Raises:
        ImageDecodeError: empty data, not an image, unsupported format, truncated or
            corrupt data, or more pixels than ``config.max_pixels``.
    """
    if not data:
        raise ImageDecodeError("empty file")
    if name and is_raw(name):
        image, meta = decode_raw(data, lambda preview: decode_bytes(preview, config), name)
        return Decoded(image, meta, hashlib.blake2b(data, digest_size=16).hexdigest())
    _register_heif()
    try:
        with warnings.catch_warnings():
            # Our own max_pixels check replaces Pillow's decompression-bomb warning.
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(data), formats=image_formats()) as img:
                return _decode_opened(img, data, config)
    except ImageDecodeError:
        raise
    except Image.DecompressionBombError as exc:
        raise ImageDecodeError(_pillow_bomb_message(exc, config.max_pixels)) from exc
    except UnidentifiedImageError as exc:
        raise ImageDecodeError(_unidentified_message(data)) from exc
    except _CORRUPT_ERRORS as exc:
        raise ImageDecodeError(f"truncated or corrupt image data: {exc}") from exc


def _decode_opened(img: Image.Image, data: bytes, config: DecodeConfig) -> Decoded:
    """Decode an opened (header-only) image; see :func:`decode_bytes`."""
    width, height = img.size
    if width * height > config.max_pixels:
        raise ImageDecodeError(_too_many_pixels(width, height, config.max_pixels))
    # draft only shrinks by powers of two (1/2..1/8) and is a no-op except for JPEG/MPO;
    # asking for draft_side x draft_side keeps the shorter side >= draft_side.
    if config.draft_side > 0 and min(width, height) >= 2 * config.draft_side:
        img.draft("RGB", (config.draft_side, config.draft_side))
    img.load()  # decode now, so truncated data fails here and not in a later resize
    meta = read_meta(img, (width, height), "unknown")
    rgb = upright(_to_rgb(img), meta.orientation)
    if rgb is img:
        rgb = img.copy()  # closing img destroys its pixels; the copy also frees `data`
    if config.perceptual_hash:
        meta = replace(meta, phash=perceptual_hash(rgb))
    return Decoded(rgb, meta, hashlib.blake2b(data, digest_size=16).hexdigest())


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
