"""Thumbnails: EXIF-upright, at most the asked size, colours converted to sRGB."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
from PIL import Image, ImageCms

from retrieval.images.thumbnails import thumbnail_bytes, to_srgb
from tests.helpers.icc import wide_gamut_icc


def _wide_gamut_jpeg(path: Path) -> Image.Image:
    rng = np.random.default_rng(0)
    pixels = np.clip(rng.normal((200, 100, 100), 20, (48, 64, 3)), 0, 255).astype(np.uint8)
    image = Image.fromarray(pixels)
    image.save(path, "JPEG", quality=95, icc_profile=wide_gamut_icc())
    return image


def test_a_wide_gamut_photo_is_converted_to_srgb(tmp_path: Path) -> None:
    # Phones write Display P3: kept in its own numbers, the thumbnail looks washed out.
    source = tmp_path / "p3.jpg"
    _wide_gamut_jpeg(source)
    with Image.open(source) as original:
        oracle = ImageCms.profileToProfile(
            original.convert("RGB"),
            ImageCms.ImageCmsProfile(io.BytesIO(wide_gamut_icc())),
            ImageCms.createProfile("sRGB"),
            outputMode="RGB",
        )
        raw = np.asarray(original.convert("RGB"), np.float32)
    with Image.open(io.BytesIO(thumbnail_bytes(source, side=64, format="PNG"))) as thumb:
        got = np.asarray(thumb.convert("RGB"), np.float32)
        assert "icc_profile" not in thumb.info  # sRGB pixels, no foreign profile left behind
    assert np.abs(got - np.asarray(oracle, np.float32)).mean() < 1.0
    assert np.abs(got - raw)[..., 0].mean() > 8  # the red channel really moved


def test_images_without_a_profile_or_with_a_broken_one_keep_their_pixels() -> None:
    plain = Image.new("RGB", (8, 8), (10, 200, 30))
    assert to_srgb(plain) is plain
    broken = plain.copy()
    broken.info["icc_profile"] = b"not a profile"
    assert np.array_equal(np.asarray(to_srgb(broken)), np.asarray(plain))
