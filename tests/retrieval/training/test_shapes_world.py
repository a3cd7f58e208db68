"""Shapes World generator: grammar, negatives, determinism and what the pixels show.

Images are checked against their captions by an independent oracle: objects are found by
their distance from the background colour, named by the nearest colour anchor, measured by
their bounding boxes and located by coverage-weighted centroids.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from scipy import ndimage
from skimage import measure

from retrieval.training import shapes_world as sw

ANCHORS = {
    "red": (215, 45, 45),
    "green": (45, 165, 65),
    "blue": (45, 85, 215),
    "yellow": (230, 205, 45),
    "purple": (145, 60, 185),
    "orange": (240, 135, 35),
}
COLOUR = "(red|green|blue|yellow|purple|orange)"
SHAPE = "(circle|square|triangle|diamond)"
ONE = re.compile(rf"^a (small|large) {COLOUR} {SHAPE}$")
TWO = re.compile(rf"^an? {COLOUR} {SHAPE} (to the left of|to the right of|above|below) an? {COLOUR} {SHAPE}$")
REVERSED = {
    "to the left of": "to the right of",
    "to the right of": "to the left of",
    "above": "below",
    "below": "above",
}
SIDES = {"small": (10, 15), "large": (24, 30), "pair": (13, 22)}  # contract, at 64 px
SLACK = 2  # px of anti-aliasing allowed on a measured bounding box


def _a(word: str) -> str:
    """The word after its English indefinite article: "an orange", "a red"."""
    return f"an {word}" if word[0] in "aeiou" else f"a {word}"


def _lines(folder: Path) -> list[dict]:
    return [json.loads(line) for line in (folder / "pairs.jsonl").read_text().splitlines()]


@pytest.fixture(scope="module")
def eval_split(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("shapes") / "eval"
    sw.generate(folder, 300, seed=3)
    return folder


@pytest.fixture(scope="module")
def train_split(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("shapes") / "train"
    sw.generate(folder, 200, seed=4, split="train")
    return folder


# ---------------------------------------------------------------- grammar


def test_grammar_has_2256_distinct_well_formed_captions() -> None:
    captions = sw.all_captions()
    assert len(captions) == len(set(captions)) == 2256
    assert sum(bool(ONE.match(c)) for c in captions) == 48
    assert sum(bool(TWO.match(c)) for c in captions) == 2208
    for caption in captions:
        assert caption == caption.lower() == " ".join(caption.split())
        assert not caption.endswith(".")
    for match in filter(None, map(TWO.match, captions)):
        assert (match[1], match[2]) != (match[4], match[5])  # two different (colour, shape) pairs


def test_articles_agree_with_the_word_after_them() -> None:
    captions = sw.all_captions()
    assert not [c for c in captions if re.search(r"\ba [aeiou]|\ban [^aeiou]", c)]
    assert "an orange circle to the left of a red square" in captions
    assert sw.GENERATOR_VERSION >= 2  # the captions changed with the articles: the files are not version 1's
    # A colour swap that changes the article is still a colour negative.
    assert sw.negative_kind("an orange circle above a red square", "a red circle above an orange square") == "colour"


def test_split_counts_follow_share_within_eval_limits() -> None:
    assert sw.split_counts(150, 0.7, "eval") == (45, 105)
    assert sw.split_counts(300, 0.7, "eval") == (48, 252)  # only 48 one-object captions exist
    assert sw.split_counts(2256, 0.7, "eval") == (48, 2208)
    assert sw.split_counts(1000, 0.7, "train") == (300, 700)


def test_full_eval_plan_is_the_whole_grammar_and_train_repeats() -> None:
    assert sorted(s.caption for s in sw.plan_scenes(2256, seed=0)) == sorted(sw.all_captions())
    train = [s.caption for s in sw.plan_scenes(3000, seed=0, split="train")]
    assert len(train) == 3000 and len(set(train)) < 2256


# ---------------------------------------------------------------- lines and negatives


def _expected_negatives(caption: str, negatives: list[str]) -> list[str] | None:
    """The contract's negatives for ``caption`` (one-object colour/shape: taken from ``negatives``)."""
    if match := ONE.match(caption):
        size, colour, shape = match.groups()
        other_colour, other_shape = ONE.match(negatives[0])[2], ONE.match(negatives[1])[3]
        assert other_colour != colour and other_shape != shape
        other = "large" if size == "small" else "small"
        return [f"a {size} {other_colour} {shape}", f"a {size} {colour} {other_shape}", f"a {other} {colour} {shape}"]
    c1, s1, rel, c2, s2 = TWO.match(caption).groups()
    wanted = [f"{_a(c2)} {s1} {rel} {_a(c1)} {s2}", f"{_a(c1)} {s1} {REVERSED[rel]} {_a(c2)} {s2}"]
    wanted.append(f"{_a(c1)} {s2} {rel} {_a(c2)} {s1}")  # colours swapped, relation reversed, shapes swapped
    return [w for w in wanted if w != caption]


def test_eval_lines_unique_with_contract_negatives(eval_split: Path) -> None:
    lines = _lines(eval_split)
    grammar = set(sw.all_captions())
    captions = [line["caption"] for line in lines]
    assert len(lines) == 300 and len(set(captions)) == 300
    assert [line["image"] for line in lines] == [f"images/{i:06d}.png" for i in range(300)]
    assert sum(bool(TWO.match(c)) for c in captions) == sw.split_counts(300, 0.7, "eval")[1] == 252
    for line in lines:
        assert set(line) == {"image", "caption", "negatives"}
        negatives = line["negatives"]
        assert negatives == _expected_negatives(line["caption"], negatives)
        assert all(n != line["caption"] and n in grammar for n in negatives)
        match = TWO.match(line["caption"])
        expected = 3 if match is None else 3 - (match[1] == match[4]) - (match[2] == match[5])
        assert len(negatives) == expected


def test_eval_split_has_no_mirrored_captions(eval_split: Path) -> None:
    """``X left of Y`` and ``Y right of X`` show the same picture; a small eval split holds only one."""
    captions = {line["caption"] for line in _lines(eval_split)}
    for match in filter(None, map(TWO.match, captions)):
        c1, s1, rel, c2, s2 = match.groups()
        assert f"{_a(c2)} {s2} {REVERSED[rel]} {_a(c1)} {s1}" not in captions


def test_generated_lines_say_an_orange(train_split: Path) -> None:
    """Issue 21: the files say "an orange circle", never "a orange circle", in captions and negatives."""
    lines = _lines(train_split)
    texts = [text for line in lines for text in (line["caption"], *line["negatives"])]
    assert sum("an orange" in line["caption"] and bool(TWO.match(line["caption"])) for line in lines) >= 5
    assert not [text for text in texts if re.search(r"\ba orange\b|\ban (?!orange)", text)]
    assert json.loads((train_split / "shapes_world.json").read_text())["generator_version"] == sw.GENERATOR_VERSION


def test_train_split_keeps_exact_share(train_split: Path) -> None:
    captions = [line["caption"] for line in _lines(train_split)]
    assert sum(bool(TWO.match(c)) for c in captions) == 140
    meta = json.loads((train_split / "shapes_world.json").read_text())
    assert meta["split"] == "train" and meta["seed"] == 4 and meta["two_object_lines"] == 140
    assert not list(train_split.glob("*.tmp"))


# ---------------------------------------------------------------- determinism


def test_same_seed_same_bytes_other_seed_other_files(tmp_path: Path) -> None:
    a, b, c = (sw.generate(tmp_path / name, 24, seed=seed) for name, seed in (("a", 7), ("b", 7), ("c", 8)))
    assert a.read_bytes() == b.read_bytes() != c.read_bytes()
    images = sorted(p.name for p in (a.parent / "images").iterdir())
    assert len(images) == 24
    for name in images:
        assert (a.parent / "images" / name).read_bytes() == (b.parent / "images" / name).read_bytes()
    assert any((a.parent / "images" / n).read_bytes() != (c.parent / "images" / n).read_bytes() for n in images)


# ---------------------------------------------------------------- pixels


def _objects(path: Path) -> tuple[np.ndarray, list[dict]]:
    """Background colour ``(3,)`` and one dict per object: colour, box side, centroid (x, y)."""
    image = Image.open(path)
    assert image.mode == "RGB" and image.size == (64, 64)
    pixels = np.asarray(image, dtype=np.float64)  # (H, W, 3)
    border = np.concatenate([pixels[0], pixels[-1], pixels[:, 0], pixels[:, -1]])
    background = np.median(border, axis=0)
    distance = np.abs(pixels - background).max(axis=2)  # (H, W)
    labels = measure.label(distance > 40, connectivity=2)
    objects = []
    for region in measure.regionprops(labels):
        inside = labels == region.label
        core = inside & (distance >= 0.85 * distance[inside].max())
        ys, xs = np.nonzero(core)
        cy, cx = region.centroid
        near = (ys - cy) ** 2 + (xs - cx) ** 2 <= 9
        colour = np.median(pixels[ys[near], xs[near]] if near.any() else pixels[core], axis=0)
        full = np.abs(colour - background).max()
        ring = ndimage.binary_dilation(inside, iterations=1) & (labels == 0) | inside
        weight = np.clip(distance / full, 0, 1) * ring  # pixel coverage
        gy, gx = np.mgrid[0:64, 0:64] + 0.5
        top, left, bottom, right = region.bbox
        objects.append({
            "colour": colour,
            "side": max(bottom - top, right - left),
            "centre": np.array([(weight * gx).sum(), (weight * gy).sum()]) / weight.sum(),
            "touches_border": top == 0 or left == 0 or bottom == 64 or right == 64,
        })  # fmt: skip
    return background, objects


def _colour_name(rgb: np.ndarray) -> str:
    return min(ANCHORS, key=lambda name: np.abs(rgb - ANCHORS[name]).max())


def _relation_ok(first: np.ndarray, second: np.ndarray, relation: str) -> bool:
    """The contract's thresholds on two measured centres (x, y)."""
    dx, dy = second - first
    main, cross = (dx, dy) if relation in ("to the left of", "to the right of") else (dy, dx)
    sign = 1 if relation in ("to the left of", "above") else -1
    return sign * main >= 18 and abs(cross) <= 8


def test_images_show_their_captions(eval_split: Path) -> None:
    for line in _lines(eval_split):
        background, objects = _objects(eval_split / line["image"])
        assert ((background >= 185) & (background <= 245)).all() and np.ptp(background) <= 20
        assert not any(o["touches_border"] for o in objects)
        if match := ONE.match(line["caption"]):
            size, colour, _ = match.groups()
            assert len(objects) == 1, line
            (thing,) = objects
            assert _colour_name(thing["colour"]) == colour
            assert (np.abs(thing["colour"] - ANCHORS[colour]) <= 25 + 4).all()
            low, high = SIDES[size]
            assert low - SLACK <= thing["side"] <= high + SLACK, (line, thing["side"])
            continue
        c1, _, relation, c2, _ = TWO.match(line["caption"]).groups()
        assert len(objects) == 2, line
        low, high = SIDES["pair"]
        assert all(low - SLACK <= o["side"] <= high + SLACK for o in objects), line
        names = [_colour_name(o["colour"]) for o in objects]
        assert sorted(names) == sorted([c1, c2]), line
        a, b = (o["centre"] for o in objects)
        if c1 != c2:
            first, second = (a, b) if names[0] == c1 else (b, a)
            assert _relation_ok(first, second, relation), (line, a, b)
        else:  # same colour: telling them apart needs the shape, so check the unordered geometry
            assert _relation_ok(a, b, relation) or _relation_ok(b, a, relation), (line, a, b)


def test_background_corner_in_contract_range(eval_split: Path) -> None:
    for line in _lines(eval_split)[:50]:
        corner = np.asarray(Image.open(eval_split / line["image"]))[0, 0].astype(int)
        assert ((corner >= 185) & (corner <= 245)).all() and np.ptp(corner) <= 20


def test_other_canvas_sizes_scale_the_geometry(tmp_path: Path) -> None:
    scenes = [sw.Scene(sw.Thing("red", "square"), size="large"), sw.Scene(sw.Thing("blue", "circle"), size="small")]
    for scene, (low, high) in zip(scenes, (SIDES["large"], SIDES["small"])):
        for seed in range(5):
            image = sw.render(scene, 128, np.random.default_rng(seed))
            assert image.mode == "RGB" and image.size == (128, 128)
            pixels = np.asarray(image, dtype=int)
            ys, xs = np.nonzero(np.abs(pixels - pixels[0, 0]).max(axis=2) > 40)
            side = max(np.ptp(ys), np.ptp(xs)) + 1
            assert 2 * (low - SLACK) <= side <= 2 * (high + SLACK)


# ---------------------------------------------------------------- errors


def test_eval_split_above_grammar_size_is_refused(tmp_path: Path) -> None:
    with pytest.raises(sw.EvalSplitTooLargeError, match="at most 2256"):
        sw.generate(tmp_path / "big", 2257, seed=0)
    assert not (tmp_path / "big").exists()
    script = Path(__file__).resolve().parents[3] / "benchmarks" / "shapes_world.py"
    done = subprocess.run(
        [sys.executable, str(script), str(tmp_path / "big"), "--count", "2257", "--seed", "0"],
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": str(script.parents[1])},
    )
    assert done.returncode == 2
    assert "at most 2256" in done.stderr


def test_the_script_seeds_with_0_when_no_seed_is_given(tmp_path: Path) -> None:
    script = Path(__file__).resolve().parents[3] / "benchmarks" / "shapes_world.py"
    done = subprocess.run(
        [sys.executable, str(script), str(tmp_path / "unseeded"), "--count", "6"],
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": str(script.parents[1])},
    )
    assert done.returncode == 0, done.stderr
    sw.generate(tmp_path / "seed0", 6, seed=0)
    assert _lines(tmp_path / "unseeded") == _lines(tmp_path / "seed0")


def test_plans_and_scenes_outside_the_grammar_are_refused() -> None:
    with pytest.raises(sw.EvalSplitTooLargeError):
        sw.plan_scenes(2257, seed=0)
    with pytest.raises(ValueError, match="split"):
        sw.plan_scenes(10, seed=0, split="test")
    with pytest.raises(ValueError):
        sw.Scene(sw.Thing("red", "circle"), relation="above", second=sw.Thing("red", "circle"))
    with pytest.raises(ValueError):
        sw.Thing("pink", "circle")


def test_non_empty_folder_is_refused(tmp_path: Path) -> None:
    (tmp_path / "keep.txt").write_text("x")
    with pytest.raises(FileExistsError, match="not empty"):
        sw.generate(tmp_path, 5, seed=0)
