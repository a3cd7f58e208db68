"""Make the OCR test set: real photo backgrounds with known words rendered on them.

Backgrounds are crops and resizes of the real photographs that scikit-image ships (none
of them shows text); each image gets 1-5 words from ``benchmarks/data/ocr_words.txt`` on
one or two lines, each line in its own font (the machine's TrueType fonts), size, colour
and rotation (up to 15 degrees), sometimes on a plate like a sign. The truth goes to
``truth.jsonl`` beside the images: the file, its words and each line's text and corners.
File names carry no word (``img_0001.jpg``), so only the pixels can answer a query.

    python benchmarks/ocr_testset.py --out /tmp/ocr-set --count 500 --seed 0
"""

from __future__ import annotations

import argparse
import glob
import json
import math
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont

WORDS = Path(__file__).with_name("data") / "ocr_words.txt"
# scikit-image's photographs in which the OCR engine finds no text of their own (page, text
# and clock show text; astronaut and the stereo motorcycles have badges and YAMAHA logos).
BACKGROUNDS = (
    "brick",
    "camera",
    "cat",
    "coffee",
    "coins",
    "grass",
    "gravel",
    "hubble_deep_field",
    "immunohistochemistry",
    "moon",
    "retina",
    "rocket",
)
FONT_GLOBS = (
    "/usr/share/fonts/truetype/**/*.ttf",
    "/usr/share/fonts/opentype/**/*.otf",
    "/usr/local/share/fonts/**/*.ttf",
)
SKIP_FONTS = ("Math", "Symbol", "Emoji", "ExtraLight")  # no Latin letters, or too thin to be a fair test


def load_words(path: Path = WORDS) -> list[str]:
    """The dictionary: one word per line, ``#`` comments skipped."""
    lines = (line.strip() for line in path.read_text(encoding="utf-8").splitlines())
    return [line for line in lines if line and not line.startswith("#")]


def find_fonts() -> list[str]:
    """The machine's TrueType/OpenType fonts that write Latin text, sorted (deterministic)."""
    found = sorted({p for pattern in FONT_GLOBS for p in glob.glob(pattern, recursive=True)})
    fonts = [p for p in found if not any(s in Path(p).name for s in SKIP_FONTS)]
    if not fonts:
        raise SystemExit("no TrueType fonts found (apt-get install fonts-dejavu-core fonts-liberation)")
    return fonts


def load_backgrounds() -> list[np.ndarray]:
    """The background photos as RGB uint8 arrays."""
    import skimage.data

    images = []
    for name in BACKGROUNDS:
        pixels = getattr(skimage.data, name)()
        if pixels.ndim == 2:
            pixels = np.stack([pixels] * 3, axis=-1)
        images.append(np.ascontiguousarray(pixels[:, :, :3]).astype(np.uint8))
    return images


def background(rng: np.random.Generator, photos: list[np.ndarray]) -> Image.Image:
    """A random crop of a random photo, resized to a long side of 640-1280 pixels."""
    photo = photos[rng.integers(len(photos))]
    height, width = photo.shape[:2]
    aspect = float(rng.choice([4 / 3, 3 / 4, 16 / 9, 1.0, 3 / 2]))
    scale = rng.uniform(0.45, 1.0)
    crop_w = int(min(width, height * aspect) * scale)
    crop_h = int(crop_w / aspect)
    x0 = int(rng.integers(0, width - crop_w + 1))
    y0 = int(rng.integers(0, height - crop_h + 1))
    crop = Image.fromarray(photo[y0 : y0 + crop_h, x0 : x0 + crop_w])
    long_side = int(rng.integers(640, 1281))
    size = (long_side, round(long_side / aspect)) if aspect >= 1 else (round(long_side * aspect), long_side)
    return crop.resize(size, Image.Resampling.BICUBIC)


def contrasting_colour(rng: np.random.Generator, region: np.ndarray) -> tuple[int, int, int]:
    """A random colour whose luminance stands apart from ``region``'s mean."""
    mean = float(region.mean()) / 255 if region.size else 0.5
    for _ in range(50):
        colour = rng.integers(0, 256, 3)
        luma = float(colour @ (0.299, 0.587, 0.114)) / 255
        if abs(luma - mean) >= 0.4:
            return tuple(int(c) for c in colour)
    return (0, 0, 0) if mean > 0.5 else (255, 255, 255)


def render_line(
    canvas: Image.Image, text: str, rng: np.random.Generator, fonts: list[str], taken: list[tuple[int, int, int, int]]
) -> list[float] | None:
    """Draw ``text`` somewhere free on ``canvas``; return its 4 corners (x, y pixels) or None."""
    width, height = canvas.size
    size = max(14, int(rng.uniform(0.03, 0.09) * min(width, height)))
    font = ImageFont.truetype(fonts[rng.integers(len(fonts))], size)
    left, top, right, bottom = font.getbbox(text)
    pad = size // 3
    layer = Image.new("RGBA", (right - left + 2 * pad, bottom - top + 2 * pad), (0, 0, 0, 0))
    angle = float(rng.uniform(-15, 15))
    rotated_w = (
        int(layer.width * abs(math.cos(math.radians(angle))) + layer.height * abs(math.sin(math.radians(angle)))) + 2
    )
    rotated_h = (
        int(layer.width * abs(math.sin(math.radians(angle))) + layer.height * abs(math.cos(math.radians(angle)))) + 2
    )
    if rotated_w >= width or rotated_h >= height:
        return None
    for _ in range(30):
        x = int(rng.integers(0, width - rotated_w))
        y = int(rng.integers(0, height - rotated_h))
        spot = (x, y, x + rotated_w, y + rotated_h)
        if not any(spot[0] < t[2] and t[0] < spot[2] and spot[1] < t[3] and t[1] < spot[3] for t in taken):
            break
    else:
        return None
    draw = ImageDraw.Draw(layer)
    region = np.asarray(canvas.crop(spot).convert("L"))
    if rng.random() < 0.2:  # a plate behind the words, like a sign
        plate = tuple(int(c) for c in rng.integers(0, 256, 3))
        draw.rectangle((0, 0, layer.width - 1, layer.height - 1), fill=(*plate, 255))
        region = np.full((1,), float(np.dot(plate, (0.299, 0.587, 0.114))))
    colour = contrasting_colour(rng, region)
    stroke = int(rng.random() < 0.15)
    draw.text(
        (pad - left, pad - top), text, font=font, fill=(*colour, 255), stroke_width=stroke, stroke_fill=(*colour, 255)
    )
    turned = layer.rotate(angle, resample=Image.Resampling.BICUBIC, expand=True)
    canvas.paste(turned, (x, y), turned)
    taken.append(spot)
    return _corners(layer.size, angle, (x + turned.width / 2, y + turned.height / 2))


def _corners(size: tuple[int, int], angle: float, centre: tuple[float, float]) -> list[float]:
    """The corners of a ``size`` box turned by ``angle`` degrees (counter-clockwise) about ``centre``."""
    w, h = size
    theta = math.radians(angle)
    out = []
    for cx, cy in ((-w / 2, -h / 2), (w / 2, -h / 2), (w / 2, h / 2), (-w / 2, h / 2)):
        out += [
            round(centre[0] + cx * math.cos(theta) + cy * math.sin(theta), 1),
            round(centre[1] - cx * math.sin(theta) + cy * math.cos(theta), 1),
        ]
    return out


def make_image(
    rng: np.random.Generator, photos: list[np.ndarray], fonts: list[str], words: list[str]
) -> tuple[Image.Image, list[dict]]:
    """One test image and its lines (``{"text", "words", "box"}``); at least one line."""
    while True:
        canvas, lines = _attempt(rng, photos, fonts, words)
        if lines:
            return canvas, lines


def _attempt(
    rng: np.random.Generator, photos: list[np.ndarray], fonts: list[str], words: list[str]
) -> tuple[Image.Image, list[dict]]:
    canvas = background(rng, photos)
    chosen = list(rng.choice(words, size=int(rng.integers(1, 6)), replace=False))
    split = int(rng.integers(1, len(chosen))) if len(chosen) > 1 and rng.random() < 0.5 else len(chosen)
    lines, taken = [], []
    for group in (chosen[:split], chosen[split:]):
        if group:
            box = render_line(canvas, " ".join(group), rng, fonts, taken)
            if box is not None:
                lines.append({"text": " ".join(group), "words": group, "box": box})
    return canvas, lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, required=True, help="folder to write (images + truth.jsonl)")
    parser.add_argument("--count", type=int, default=500)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    rng = np.random.default_rng(args.seed)
    photos, fonts, words = load_backgrounds(), find_fonts(), load_words()
    args.out.mkdir(parents=True, exist_ok=True)
    with open(args.out / "truth.jsonl", "w", encoding="utf-8") as truth:
        for number in range(1, args.count + 1):
            image, lines = make_image(rng, photos, fonts, words)
            name = f"img_{number:04d}.jpg"
            image.convert("RGB").save(args.out / name, quality=90)
            record = {
                "file": name,
                "size": image.size,
                "words": [w for line in lines for w in line["words"]],
                "lines": lines,
            }
            truth.write(json.dumps(record) + "\n")
    print(f"{args.count} images, {len(fonts)} fonts, {len(words)} words -> {args.out}")


if __name__ == "__main__":
    main()
