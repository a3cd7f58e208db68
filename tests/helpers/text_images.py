"""Real photos with known words rendered on them: the oracle of the OCR and keyword tests."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageDraw, ImageFont

FONT = "/usr/share/fonts/truetype/dejavu/DejaVuSans-Bold.ttf"


def font(size: int = 40) -> ImageFont.FreeTypeFont:
    """DejaVu Sans Bold (skips the test where it is not installed)."""
    if not os.path.exists(FONT):
        pytest.skip(f"{FONT} is not installed (fonts-dejavu-core)")
    return ImageFont.truetype(FONT, size)


def render_words(photo: str, words: str | None, path: Path) -> tuple[float, float, float, float]:
    """scikit-image's ``photo`` at 480x360 with ``words`` on it, a word a line on a light plate
    (OCR drops the space between words on one line now and then), saved as ``path``; the
    first word's box (left, top, right, bottom) as fractions of the width and height."""
    import skimage.data

    pixels = np.asarray(getattr(skimage.data, photo)())
    image = Image.fromarray(pixels).convert("RGB").resize((480, 360))
    box = (0.0, 0.0, 0.0, 0.0)
    draw = ImageDraw.Draw(image)
    for number, word in enumerate((words or "").split()):
        left, top, right, bottom = draw.textbbox((40, 60 + 80 * number), word, font=font())
        draw.rectangle((left - 8, top - 8, right + 8, bottom + 8), fill=(250, 250, 240))
        draw.text((40, 60 + 80 * number), word, font=font(), fill=(10, 10, 10))
        if number == 0:
            box = (left / 480, top / 360, right / 480, bottom / 360)
    image.save(path, quality=92)
    return box
