"""open_clip's image preprocessing in numpy and PIL (no torch), pixel for pixel.

open_clip builds a torchvision pipeline on PIL images: resize (shortest side, longest side
or both), center crop (padding where the image is smaller), RGB, ``/ 255``, normalise.
Each step below does the same PIL call or the same float32 arithmetic, so the pixels are
equal, not merely close.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from PIL import Image

OPENAI_MEAN = (0.48145466, 0.4578275, 0.40821073)
OPENAI_STD = (0.26862954, 0.26130258, 0.27577711)
RESIZE_MODES = ("shortest", "longest", "squash")
INTERPOLATIONS = ("bicubic", "bilinear")


@dataclass(frozen=True)
class PreprocessConfig:
    """How an image becomes model input (Immich's ``visual/preprocess_cfg.json`` holds the same keys)."""

    size: tuple[int, int] = (224, 224)  # (height, width) of the model input
    mean: tuple[float, float, float] = OPENAI_MEAN  # per-channel mean subtracted after / 255
    std: tuple[float, float, float] = OPENAI_STD  # per-channel divisor after the mean
    interpolation: str = "bicubic"  # PIL resampling of the resize: "bicubic" or "bilinear"
    resize_mode: str = "shortest"  # "shortest" side + center crop, "longest" side + pad, or "squash"
    fill_color: int = 0  # grey level of the padding ("longest", or images smaller than the crop)

    def to_dict(self) -> dict[str, object]:
        """The ``preprocess_cfg.json`` form (open_clip's ``get_model_preprocess_cfg`` keys)."""
        return {
            "size": list(self.size),
            "mode": "RGB",
            "mean": list(self.mean),
            "std": list(self.std),
            "interpolation": self.interpolation,
            "resize_mode": self.resize_mode,
            "fill_color": self.fill_color,
        }

    @classmethod
    def from_dict(cls, raw: dict[str, object]) -> PreprocessConfig:
        """Read a ``preprocess_cfg.json`` dict; missing keys take open_clip's defaults.

        Raises:
            ValueError: a value xmr cannot reproduce (unknown resize mode, interpolation, ...).
        """
        size = _pair(raw.get("size", 224))
        mean = _triple(raw.get("mean") or OPENAI_MEAN)
        std = _triple(raw.get("std") or OPENAI_STD)
        interpolation = str(raw.get("interpolation") or "bicubic")
        interpolation = "bicubic" if interpolation == "random" else interpolation  # open_clip's eval rule
        resize_mode = str(raw.get("resize_mode") or "shortest")
        if resize_mode not in RESIZE_MODES or interpolation not in INTERPOLATIONS or len(size) != 2 or min(size) < 1:
            raise ValueError(f"unsupported preprocessing {raw!r}")
        fill = raw.get("fill_color") or 0
        if not isinstance(fill, (int, float)):
            raise ValueError(f"unsupported preprocessing {raw!r}")
        return cls((size[0], size[1]), mean, std, interpolation, resize_mode, int(fill))

    @classmethod
    def from_file(cls, path: Path) -> PreprocessConfig:
        """Read ``preprocess_cfg.json``."""
        return cls.from_dict(json.loads(Path(path).read_text()))


def _pair(value: object) -> tuple[int, ...]:
    """open_clip's image size: one int, or [height, width] (a one-item list means square)."""
    if isinstance(value, (int, float)):
        return (int(value), int(value))
    if not isinstance(value, (list, tuple)) or not all(isinstance(v, (int, float)) for v in value):
        raise ValueError(f"unsupported image size {value!r}")
    return (int(value[0]), int(value[0])) if len(value) == 1 else tuple(int(v) for v in value)


def _triple(value: object) -> tuple[float, float, float]:
    if isinstance(value, (list, tuple)):
        values = [float(v) for v in value]
    elif isinstance(value, (int, float)):
        values = [float(value)] * 3
    else:
        raise ValueError(f"expected channel values, not {value!r}")
    if len(values) != 3:
        raise ValueError(f"expected three channel values, not {value!r}")
    return (values[0], values[1], values[2])


def preprocess_image(image: Image.Image, config: PreprocessConfig) -> np.ndarray:
    """PIL image -> ``(3, H, W)`` float32 C-contiguous pixels, as open_clip's eval transform makes them."""
    from PIL import Image as PILImage

    resample = PILImage.Resampling.BICUBIC if config.interpolation == "bicubic" else PILImage.Resampling.BILINEAR
    height, width = config.size
    if config.resize_mode == "squash":
        image = image.resize((width, height), resample)
    elif config.resize_mode == "longest":
        image = image.resize(_resized_size(image.size, config), resample)
        image = _center_crop_or_pad(image, height, width, config.fill_color)
    else:
        if height != width:  # open_clip's ResizeKeepRatio here is always bicubic
            resample = PILImage.Resampling.BICUBIC
        image = image.resize(_resized_size(image.size, config), resample)
        image = _center_crop_or_pad(image, height, width, 0)  # torchvision CenterCrop pads with 0
    if image.mode != "RGB":
        image = image.convert("RGB")
    pixels = np.asarray(image, dtype=np.uint8).astype(np.float32) / np.float32(255)  # (H, W, 3)
    pixels = (pixels - np.asarray(config.mean, dtype=np.float32)) / np.asarray(config.std, dtype=np.float32)
    return np.ascontiguousarray(pixels.transpose(2, 0, 1))  # (3, H, W)


def _resized_size(source: tuple[int, int], config: PreprocessConfig) -> tuple[int, int]:
    """(width, height) after the resize step (torchvision's and open_clip's rounding rules)."""
    width, height = source
    target_h, target_w = config.size
    if config.resize_mode == "shortest" and target_h == target_w:
        # torchvision Resize(int): the short side becomes the size, the long side is truncated.
        short, long = (width, height) if width <= height else (height, width)
        new_short, new_long = target_h, max(1, int(target_h * long / short))
        return (new_short, new_long) if width <= height else (new_long, new_short)
    # open_clip ResizeKeepRatio: one ratio for both sides (longest=1: the larger, 0: the smaller), rounded.
    ratio_h, ratio_w = height / target_h, width / target_w
    ratio = max(ratio_h, ratio_w) if config.resize_mode == "longest" else min(ratio_h, ratio_w)
    # At least one pixel: open_clip fails on a 500x3 strip here; xmr keeps such images.
    return (max(1, round(width / ratio)), max(1, round(height / ratio)))


def _center_crop_or_pad(image: Image.Image, height: int, width: int, fill: int) -> Image.Image:
    from PIL import Image as PILImage

    image_w, image_h = image.size
    if width > image_w or height > image_h:
        left = (width - image_w) // 2 if width > image_w else 0
        top = (height - image_h) // 2 if height > image_h else 0
        right = (width - image_w + 1) // 2 if width > image_w else 0
        bottom = (height - image_h + 1) // 2 if height > image_h else 0
        padded = PILImage.new(image.mode, (image_w + left + right, image_h + top + bottom), _fill(image.mode, fill))
        padded.paste(image, (left, top))
        image = padded
        image_w, image_h = image.size
        if (image_w, image_h) == (width, height):
            return image
    top = int(round((image_h - height) / 2.0))
    left = int(round((image_w - width) / 2.0))
    return image.crop((left, top, left + width, top + height))


def _fill(mode: str, fill: int) -> int | tuple[int, ...]:
    bands = len(mode) if mode in ("RGB", "RGBA", "CMYK", "LA") else 1
    return fill if bands == 1 else (fill,) * bands
