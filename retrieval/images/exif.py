"""EXIF and XMP of an opened image: orientation, capture time, camera and caption.

Broken metadata is common (editors, phones) and never costs an image its pixels: every
reader here returns None (or an empty EXIF) for what it cannot parse.
"""

from __future__ import annotations

import html
import re
import struct
from datetime import datetime

from PIL import ExifTags, Image

from index.records import ImageMeta

__all__ = [
    "BOILERPLATE_DESCRIPTIONS",
    "PILLOW_ERRORS",
    "SWAPS_AXES",
    "TRANSPOSE",
    "camera",
    "captured_at",
    "description",
    "exif_text",
    "orientation",
    "parse_exif_datetime",
    "read_exif",
    "read_meta",
    "upright",
]

# Errors Pillow raises for files it recognised but cannot decode (fuzzing shows all of them).
PILLOW_ERRORS = (OSError, SyntaxError, ValueError, struct.error, EOFError)
# Same mapping as PIL.ImageOps.exif_transpose; kept here so the tag is read only once.
TRANSPOSE = {
    2: Image.Transpose.FLIP_LEFT_RIGHT,
    3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_270,
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_90,
}
SWAPS_AXES = frozenset({5, 6, 7, 8})
# What cameras write into ImageDescription when nobody wrote a caption: not captions.
BOILERPLATE_DESCRIPTIONS = frozenset(
    {
        "olympus digital camera", "sony dsc", "konica minolta digital camera", "minolta digital camera",
        "kodak digital still camera", "samsung digital camera", "digital camera", "default", "image",
        "picasa", "exif_jpeg_pictures", "exif jpeg picture", "lg digital camera", "sanyo digital camera",
        "casio qv digital", "fujifilm digital camera", "nikon digital camera", "panasonic digital camera",
        "sharp digital camera", "pentax digital camera", "camera", "photo", "untitled", "no description",
        "created with gimp", "scanned image", "hdr", "dcim",
    }
)  # fmt: skip


def read_meta(img: Image.Image, size: tuple[int, int], unknown_format: str) -> ImageMeta:
    """The metadata of an opened image: ``size`` (its full-resolution width and height as
    stored, before any draft) turned upright by its EXIF orientation, format, EXIF fields."""
    exif = read_exif(img)
    turn = orientation(exif)
    width, height = size
    if turn in SWAPS_AXES:
        width, height = height, width
    return ImageMeta(
        width=width,
        height=height,
        format=img.format or unknown_format,
        captured_at=captured_at(exif),
        orientation=turn,
        camera=camera(exif),
        description=description(img, exif),
        title=title(img),
        keywords=keywords(img),
    )


def upright(rgb: Image.Image, turn: int | None) -> Image.Image:
    """``rgb`` with EXIF orientation ``turn`` applied (itself when there is nothing to do)."""
    return rgb.transpose(TRANSPOSE[turn]) if turn in TRANSPOSE else rgb


def read_exif(img: Image.Image) -> Image.Exif:
    """The image's EXIF (empty when there is none or it is broken)."""
    # Broken EXIF is common (editors, phones) and must not cost us the pixels.
    try:
        return img.getexif()
    except (*PILLOW_ERRORS, KeyError, IndexError, TypeError):
        return Image.Exif()


def orientation(exif: Image.Exif) -> int | None:
    """The EXIF orientation 1..8, or None when absent or out of range."""
    value = exif.get(ExifTags.Base.Orientation)
    return value if isinstance(value, int) and 1 <= value <= 8 else None


def captured_at(exif: Image.Exif) -> datetime | None:
    """EXIF DateTimeOriginal, else DateTime, as a naive datetime; None if absent/invalid."""
    try:
        exif_ifd = exif.get_ifd(ExifTags.IFD.Exif)
    except (*PILLOW_ERRORS, KeyError, IndexError, TypeError):
        exif_ifd = {}
    for value in (exif_ifd.get(ExifTags.Base.DateTimeOriginal), exif.get(ExifTags.Base.DateTime)):
        parsed = parse_exif_datetime(value)
        if parsed is not None:
            return parsed
    return None


def parse_exif_datetime(value: object) -> datetime | None:
    """An EXIF "YYYY:MM:DD HH:MM:SS" value as a naive datetime; None when it is not one."""
    text = exif_text(value)
    if text is None:
        return None
    try:
        # Cameras pad with NULs or append sub-second digits; the first 19 chars are the time.
        return datetime.strptime(text[:19], "%Y:%m:%d %H:%M:%S")
    except ValueError:  # "0000:00:00 00:00:00", blanks, other formats
        return None


_XMP_DESCRIPTION = re.compile(rb"<dc:description>.*?<rdf:li[^>]*>(.*?)</rdf:li>", re.DOTALL)


def description(img: Image.Image, exif: Image.Exif) -> str | None:
    """EXIF ImageDescription, else XMP dc:description (the captions photo tools write)."""
    text = exif_text(exif.get(ExifTags.Base.ImageDescription))
    if text and text.strip(" .").lower() not in BOILERPLATE_DESCRIPTIONS:
        return text
    xmp = img.info.get("xmp") or img.info.get("XML:com.adobe.xmp") or b""
    match = _XMP_DESCRIPTION.search(xmp.encode() if isinstance(xmp, str) else xmp)
    if not match:
        return None
    caption = html.unescape(match.group(1).decode("utf-8", "replace")).strip()
    return caption if caption and caption.strip(" .").lower() not in BOILERPLATE_DESCRIPTIONS else None


_XMP_TITLE = re.compile(rb"<dc:title>.*?<rdf:li[^>]*>(.*?)</rdf:li>", re.DOTALL)
_XMP_SUBJECT = re.compile(rb"<dc:subject>(.*?)</dc:subject>", re.DOTALL)
_XMP_ITEM = re.compile(rb"<rdf:li[^>]*>(.*?)</rdf:li>", re.DOTALL)
IPTC_TITLE, IPTC_KEYWORDS = (2, 5), (2, 25)  # IPTC IIM ObjectName and Keywords
MAX_KEYWORDS = 100  # per image: a tag list, not a dump


def title(img: Image.Image) -> str | None:
    """XMP dc:title, else IPTC ObjectName (what photo managers write as a title)."""
    match = _XMP_TITLE.search(_xmp(img))
    found = [_xmp_text(match.group(1))] if match else []
    return next((t for t in (*found, *_iptc_texts(img, IPTC_TITLE)) if t), None)


def keywords(img: Image.Image) -> tuple[str, ...]:
    """XMP dc:subject and IPTC Keywords, in file order, once each (at most :data:`MAX_KEYWORDS`)."""
    subject = _XMP_SUBJECT.search(_xmp(img))
    found = [_xmp_text(item) for item in _XMP_ITEM.findall(subject.group(1))] if subject else []
    found += _iptc_texts(img, IPTC_KEYWORDS)
    return tuple(dict.fromkeys(k for k in found if k))[:MAX_KEYWORDS]


def _xmp(img: Image.Image) -> bytes:
    xmp = img.info.get("xmp") or img.info.get("XML:com.adobe.xmp") or b""
    return xmp.encode() if isinstance(xmp, str) else xmp


def _xmp_text(raw: bytes) -> str:
    return html.unescape(raw.decode("utf-8", "replace")).strip()


def _iptc_texts(img: Image.Image, tag: tuple[int, int]) -> list[str]:
    """The texts of one IPTC IIM dataset (repeatable ones come as a list); broken IPTC gives none."""
    from PIL import IptcImagePlugin

    try:
        value = (IptcImagePlugin.getiptcinfo(img) or {}).get(tag)  # type: ignore[arg-type]  # any opened image
    except (*PILLOW_ERRORS, KeyError, IndexError, TypeError):
        return []
    items = value if isinstance(value, list) else [value] if value is not None else []
    return [t for t in (exif_text(i) for i in items) if t]


def camera(exif: Image.Exif) -> str | None:
    """ "Make Model", without repeating the make when the model already starts with it."""
    make = exif_text(exif.get(ExifTags.Base.Make)) or ""
    model = exif_text(exif.get(ExifTags.Base.Model)) or ""
    # Many models repeat the make's first word: ("Canon", "Canon EOS 5D") and
    # ("NIKON CORPORATION", "NIKON D750") should read "Canon EOS 5D" and "NIKON D750".
    brand = make.split(" ", 1)[0].lower()
    if brand and model.lower().startswith(brand):
        make = ""
    return " ".join(part for part in (make, model) if part) or None


def exif_text(value: object) -> str | None:
    """An EXIF string or bytes value, NULs dropped and stripped; None when empty or not text."""
    if isinstance(value, bytes):
        value = value.decode("utf-8", errors="replace")
    if not isinstance(value, str):
        return None
    text = value.replace("\x00", " ").strip()
    return text or None
