"""numpy/PIL preprocessing gives open_clip's pixels exactly (oracle: open_clip's torchvision transform)."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from retrieval.models.preprocess import PreprocessConfig, preprocess_image

SOURCES = [(1, 1), (3, 50), (50, 3), (224, 224), (225, 224), (640, 480), (480, 640), (31, 33), (7, 7), (300, 100)]


@pytest.mark.parametrize("size", [(32, 32), (48, 64)])
@pytest.mark.parametrize("mode", ["shortest", "longest", "squash"])
@pytest.mark.parametrize("interpolation", ["bicubic", "bilinear"])
def test_pixels_equal_open_clips_transform(size: tuple[int, int], mode: str, interpolation: str) -> None:
    from open_clip.transform import image_transform

    mean, std, fill = (0.5, 0.4, 0.3), (0.2, 0.3, 0.25), 128
    reference = image_transform(size, False, mean, std, resize_mode=mode, interpolation=interpolation, fill_color=fill)
    config = PreprocessConfig.from_dict(
        {
            "size": list(size),
            "mean": mean,
            "std": std,
            "interpolation": interpolation,
            "resize_mode": mode,
            "fill_color": fill,
        }
    )
    rng = np.random.default_rng(0)
    compared = 0
    for width, height in SOURCES:
        image = Image.fromarray(rng.integers(0, 256, (height, width, 3), dtype=np.uint8))
        try:
            theirs = reference(image).numpy()
        except ValueError:  # open_clip cannot resize a 3x50 strip to "longest"; xmr keeps one pixel
            assert preprocess_image(image, config).shape == (3, *size)
            continue
        ours = preprocess_image(image, config)
        assert ours.dtype == np.float32 and ours.flags.c_contiguous
        assert np.array_equal(ours, theirs), (width, height)
        compared += 1
    assert compared >= len(SOURCES) - 2


def test_grey_and_alpha_images_are_converted_like_open_clip() -> None:
    from open_clip.transform import image_transform

    reference = image_transform(32, False)
    config = PreprocessConfig(size=(32, 32))
    rng = np.random.default_rng(1)
    for mode, shape in (("L", (40, 50)), ("RGBA", (40, 50, 4))):
        image = Image.fromarray(rng.integers(0, 256, shape, dtype=np.uint8), mode)
        assert np.array_equal(preprocess_image(image, config), reference(image).numpy())


def test_config_reads_immich_files_and_refuses_what_it_cannot_reproduce() -> None:
    immich = {"size": [224, 224], "mode": "RGB", "mean": [0.5] * 3, "std": [0.5] * 3, "interpolation": "bicubic"}
    config = PreprocessConfig.from_dict(immich)
    assert (config.size, config.resize_mode, config.fill_color) == ((224, 224), "shortest", 0)
    assert PreprocessConfig.from_dict(json.loads(json.dumps(config.to_dict()))) == config
    assert PreprocessConfig.from_dict({"size": 256, "interpolation": "random"}).interpolation == "bicubic"
    for bad in ({"resize_mode": "crop"}, {"interpolation": "lanczos"}, {"mean": [0.5, 0.5]}, {"size": [0, 3]}):
        with pytest.raises(ValueError):
            PreprocessConfig.from_dict(bad)
