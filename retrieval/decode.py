"""Image decoding: bytes on disk -> 8-bit RGB PIL image plus metadata, ready for a preprocess.

Only Pillow, numpy and the standard library are used here (never torch), so decoding can
run in worker processes and in tools that do not load a model. HEIF/HEIC support comes
from the optional ``pillow-heif`` package, imported lazily the first time it is needed.
"""

from __future__ import annotations

import functools
import hashlib
import html
import io
import re
import struct
import warnings
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import numpy as np
from PIL import ExifTags, Image, UnidentifiedImageError, features

from index.errors import XmrError
from index.records import ImageMeta

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
    {".jpg", ".jpeg", ".png", ".webp", ".gif", ".bmp", ".tif", ".tiff"}
    | {".pnm", ".ppm", ".pgm", ".pbm"}
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
# Same mapping as PIL.ImageOps.exif_transpose; kept here so the tag is read only once.
_TRANSPOSE = {
    2: Image.Transpose.FLIP_LEFT_RIGHT,
    3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_270,
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_90,
}
_SWAPS_AXES = frozenset({5, 6, 7, 8})
# Errors Pillow raises for files it recognised but cannot decode (fuzzing shows all of them).
_CORRUPT_ERRORS = (OSError, SyntaxError, ValueError, struct.error, EOFError)


@dataclass(frozen=True)
class DecodeConfig:
    """How to decode images."""

    max_pixels: int = 180_000_000  # refuse images whose header declares more pixels
    draft_side: int = 448  # JPEG draft keeps the shorter side >= this; 0 disables draft


class ImageDecodeError(XmrError, ValueError):
    """A file is not a readable image; the message says why in plain words."""


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
    when this Pillow build can open AVIF.
    """
    extensions = set(_BASE_EXTENSIONS)
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
    return decode_bytes(data, config)


def decode_bytes(data: bytes, config: DecodeConfig = DecodeConfig()) -> Decoded:
    """Decode an encoded image into 8-bit RGB with EXIF orientation applied.

    Large JPEGs are decoded in draft mode (shorter side kept >= ``config.draft_side``);
    transparency is composited over white; 16/32-bit images are scaled to 0..255;
    animated images give their first frame. ``meta`` describes the full-resolution image.

    Raises:
        ImageDecodeError: empty data, not an image, unsupported format, truncated or
            corrupt data, or more pixels than ``config.max_pixels``.
    """
    if not data:
        raise ImageDecodeError("empty file")
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
    exif = _read_exif(img)
    orientation = _orientation(exif)
    rgb = _to_rgb(img)
    if orientation in _TRANSPOSE:
        rgb = rgb.transpose(_TRANSPOSE[orientation])
    if rgb is img:
        rgb = img.copy()  # closing img destroys its pixels; the copy also frees `data`
    if orientation in _SWAPS_AXES:
        width, height = height, width
    meta = ImageMeta(
        width=width,
        height=height,
        format=img.format or "unknown",
        captured_at=_captured_at(exif),
        orientation=orientation,
        camera=_camera(exif),
        description=_description(img, exif),
    )
    return Decoded(rgb, meta, hashlib.blake2b(data, digest_size=16).hexdigest())


def to_rgb(img: Image.Image) -> Image.Image:
    """An in-memory PIL image as 8-bit RGB with its EXIF orientation applied (for query images)."""
    orientation = _orientation(_read_exif(img))
    rgb = _to_rgb(img)
    return rgb.transpose(_TRANSPOSE[orientation]) if orientation in _TRANSPOSE else rgb


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


def _read_exif(img: Image.Image) -> Image.Exif:
    # Broken EXIF is common (editors, phones) and must not cost us the pixels.
    try:
        return img.getexif()
    except (*_CORRUPT_ERRORS, KeyError, IndexError, TypeError):
        return Image.Exif()


def _orientation(exif: Image.Exif) -> int | None:
    value = exif.get(ExifTags.Base.Orientation)
    return value if isinstance(value, int) and 1 <= value <= 8 else None


def _captured_at(exif: Image.Exif) -> datetime | None:
    """EXIF DateTimeOriginal, else DateTime, as a naive datetime; None if absent/invalid."""
    try:
        exif_ifd = exif.get_ifd(ExifTags.IFD.Exif)
    except (*_CORRUPT_ERRORS, KeyError, IndexError, TypeError):
        exif_ifd = {}
    for value in (exif_ifd.get(ExifTags.Base.DateTimeOriginal), exif.get(ExifTags.Base.DateTime)):
        parsed = _parse_exif_datetime(value)
        if parsed is not None:
            return parsed
    return None


def _parse_exif_datetime(value: object) -> datetime | None:
    text = _exif_text(value)
    if text is None:
        return None
    try:
        # Cameras pad with NULs or append sub-second digits; the first 19 chars are the time.
        return datetime.strptime(text[:19], "%Y:%m:%d %H:%M:%S")
    except ValueError:  # "0000:00:00 00:00:00", blanks, other formats
        return None


_XMP_DESCRIPTION = re.compile(rb"<dc:description>.*?<rdf:li[^>]*>(.*?)</rdf:li>", re.DOTALL)


def _description(img: Image.Image, exif: Image.Exif) -> str | None:
    """EXIF ImageDescription, else XMP dc:description (the captions photo tools write)."""
    text = _exif_text(exif.get(ExifTags.Base.ImageDescription))
    if text:
        return text
    xmp = img.info.get("xmp") or img.info.get("XML:com.adobe.xmp") or b""
    match = _XMP_DESCRIPTION.search(xmp.encode() if isinstance(xmp, str) else xmp)
    if not match:
        return None
    return html.unescape(match.group(1).decode("utf-8", "replace")).strip() or None


def _camera(exif: Image.Exif) -> str | None:
    """"Make Model", without repeating the make when the model already starts with it."""
    make = _exif_text(exif.get(ExifTags.Base.Make)) or ""
    model = _exif_text(exif.get(ExifTags.Base.Model)) or ""
    # Many models repeat the make's first word: ("Canon", "Canon EOS 5D") and
    # ("NIKON CORPORATION", "NIKON D750") should read "Canon EOS 5D" and "NIKON D750".
    brand = make.split(" ", 1)[0].lower()
    if brand and model.lower().startswith(brand):
        make = ""
    return " ".join(part for part in (make, model) if part) or None


def _exif_text(value: object) -> str | None:
    if isinstance(value, bytes):
        value = value.decode("utf-8", errors="replace")
    if not isinstance(value, str):
        return None
    text = value.replace("\x00", " ").strip()
    return text or None


def _too_many_pixels(width: int, height: int, limit: int) -> str:
    return (
        f"image is {width}x{height} = {width * height / 1e6:.1f} megapixels, "
        f"over the {limit / 1e6:g} megapixel limit"
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
