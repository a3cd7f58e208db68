"""Fixtures of the video tests: photos to film, and PyAV (every test here needs it)."""

from __future__ import annotations

import pytest
from PIL import Image

pytest.importorskip("av", reason="the video extra (PyAV) is not installed")


@pytest.fixture(scope="session")
def film_photos() -> dict[str, Image.Image]:
    """Six real photos from scikit-image, RGB."""
    from tests.helpers.videos import scikit_photos

    return scikit_photos()
