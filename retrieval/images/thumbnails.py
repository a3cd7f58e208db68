"""Small thumbnails of catalogued images (EXIF orientation applied, colours in sRGB), for previews and the page.

Browsers and terminals show a JPEG without a profile as sRGB, so a thumbnail of a wide-gamut
photo (Display P3 from phones, Adobe RGB from cameras) is converted to sRGB first: kept in its
own numbers it would look washed out.
"""

from __future__ import annotations

import io
import logging
from pathlib import Path

from PIL import Image

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
    return encode_thumbnail(image, side, format, quality)


def encode_thumbnail(image: Image.Image, side: int = 160, format: str = "PNG", quality: int = 85) -> bytes:
    """A decoded RGB ``image`` shrunk to at most ``side`` px on its longer side and encoded as ``format``."""
    image.thumbnail((side, side))
    image = to_srgb(image)
    buffer = io.BytesIO()
    options = {"optimize": False} if format == "PNG" else {"quality": quality}
    image.save(buffer, format=format, **options)
    return buffer.getvalue()


def thumbnail_png(path: str | Path, side: int = 160) -> bytes:
    """A PNG at most ``side`` pixels on its longer side (see :func:`thumbnail_bytes`)."""
    return thumbnail_bytes(path, side, "PNG")


log = logging.getLogger(__name__)


def to_srgb(image: Image.Image) -> Image.Image:
    """``image`` (RGB) with its embedded ICC profile applied, as sRGB pixels without a profile.

    An image without a profile is taken as sRGB already; a profile that cannot be read leaves
    the pixels as they are (logged), never failing the thumbnail.
    """
    icc = image.info.get("icc_profile")
    if not icc:
        return image
    from PIL import ImageCms

    try:
        source = ImageCms.ImageCmsProfile(io.BytesIO(icc))
        converted = ImageCms.profileToProfile(image, source, ImageCms.createProfile("sRGB"), outputMode="RGB")
    except (ImageCms.PyCMSError, OSError, ValueError) as exc:
        log.info("embedded colour profile not applied (%s); pixels kept as they are", exc)
        return image
    assert converted is not None  # profileToProfile returns the image unless inPlace
    converted.info.pop("icc_profile", None)
    return converted
