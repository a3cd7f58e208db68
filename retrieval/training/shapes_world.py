"""Shapes World: seeded synthetic image-caption pairs that follow /work/shared/shapes-world.md.

    .venv/bin/python retrieval/training/shapes_world.py OUT --count 2000 --seed 0 [--size 64] \
        [--two-object-share 0.7] [--split eval|train]

Writes ``OUT/images/000000.png ...``, ``OUT/shapes_world.json`` (what made the folder) and,
last, ``OUT/pairs.jsonl`` (via a temporary name: a complete-looking file means a complete run).

Where the contract leaves room, this generator decides:
- The two-object share is exact (``round(share * count)``, shuffled), not a coin flip per line.
  An eval split has only 48 one-object captions, so past 160 lines its share rises (300 -> 252).
- An eval split takes two-object captions from distinct mirror classes first (``a X to the left
  of a Y`` shows the same as ``a Y to the right of a X``): up to 1,152 lines, each caption has
  exactly one relevant image.
- "Bounding-box side" is the larger side of the axis-aligned box of the drawn, rotated shape.
- "Centres" are both box centres and area centroids, kept 0.5 px inside the thresholds.
- Articles: the contract's template says ``a {colour} {shape}``; this generator writes "an" before
  a vowel ("an orange circle above a red square"), as English does (generator version 2).
- Equal colours (shapes) in a two-object line: the colour (shape) swap gives the caption back and
  is skipped, leaving 2 negatives.
"""

from __future__ import annotations

import json
import os
import struct
import zlib
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
from PIL import Image

from retrieval.errors import EvalSplitTooLargeError

__all__ = [
    "COLOURS", "SHAPES", "SIZES", "RELATIONS", "MAX_EVAL_COUNT", "EvalSplitTooLargeError", "Thing", "Scene",
    "one_object_scenes", "two_object_scenes", "all_captions", "negatives_for",
    "split_counts", "plan_scenes", "render", "generate", "caption_kind", "negative_kind", "word_kinds",
]  # fmt: skip

# Bump when the same seed would give different files, and say why:
# 1: the first files. 2: "an" before a vowel ("an orange circle", version 1 wrote "a orange circle"): the same
#    images and the same choice of negatives, but the 31% of two-object lines that name an orange object (and
#    their negatives) are spelt differently, so figures measured on version 1 files do not carry over.
GENERATOR_VERSION = 2
COLOURS: dict[str, tuple[int, int, int]] = {
    "red": (215, 45, 45),
    "green": (45, 165, 65),
    "blue": (45, 85, 215),
    "yellow": (230, 205, 45),
    "purple": (145, 60, 185),
    "orange": (240, 135, 35),
}
SHAPES = ("circle", "square", "triangle", "diamond")
SIZES = ("small", "large")
RELATIONS = ("to the left of", "to the right of", "above", "below")
_REVERSED = dict(zip(RELATIONS, ("to the right of", "to the left of", "below", "above")))
MAX_EVAL_COUNT = 2256  # every caption of the grammar once

# Geometry in pixels of a 64-px canvas; everything scales with the canvas size.
_SIDES = {"small": (10.0, 15.0), "large": (24.0, 30.0), "pair": (13.0, 22.0)}  # bounding-box side ranges
_MAIN_GAP = 18.0  # least centre difference along a relation's axis
_CROSS_GAP = 8.0  # most centre difference across it
_SAFETY = 0.5  # sampled relations stay this far inside both thresholds
_SEPARATION = 2.0  # least gap between two objects (anti-aliased edges never touch)
_EDGE = 1.0  # least gap between an object and the canvas border
_JITTER = 25  # per-channel colour variation around an anchor
_SUPERSAMPLE = 4  # anti-aliasing: 4x4 coverage samples per pixel
_MAX_TRIES = 1000  # rejection-sampling budget per image
_OFFSETS = ((np.arange(_SUPERSAMPLE) + 0.5) / _SUPERSAMPLE).astype(np.float32)  # sample positions in a pixel
_UNIT_CIRCLE = 0.5 * np.stack([np.cos(np.arange(64) * np.pi / 32), np.sin(np.arange(64) * np.pi / 32)], axis=1)


_WORD_KINDS = (
    (
        "relation",
        frozenset(word for relation in RELATIONS for word in relation.split() if word not in {"to", "the", "of"}),
    ),
    ("colour", frozenset(COLOURS)),
    ("shape", frozenset(SHAPES)),
    ("size", frozenset(SIZES)),
)


def _a(word: str) -> str:
    """``word`` after its indefinite article: "an orange", "a red" (every word of the grammar sounds as spelt)."""
    return f"{'an' if word[0] in 'aeiou' else 'a'} {word}"


def caption_kind(caption: str) -> str:
    """A caption's kind: "two-object" when it states a relation, else "one-object"."""
    return "two-object" if any(f" {relation} " in caption for relation in RELATIONS) else "one-object"


def negative_kind(caption: str, negative: str) -> str:
    """What a negative changes in its caption: "colour", "shape", "size", "relation" or "other"."""
    a, b = _without_articles(caption), _without_articles(negative)
    changed = {w for x, y in zip(a, b) if x != y for w in (x, y)} if len(a) == len(b) else set()
    for kind, words in _WORD_KINDS:
        if changed and changed <= words:
            return kind
    return "other"


def _without_articles(caption: str) -> list[str]:
    """The caption's words, "an" read as "a": a swapped colour may change the article too."""
    return ["a" if word == "an" else word for word in caption.split()]


def word_kinds() -> dict[str, frozenset[str]]:
    """The grammar's words by kind: relation, colour, shape and size."""
    return dict(_WORD_KINDS)


@dataclass(frozen=True)
class Thing:
    """One object of a caption."""

    colour: str  # a key of COLOURS
    shape: str  # one of SHAPES

    def __post_init__(self) -> None:
        if self.colour not in COLOURS or self.shape not in SHAPES:
            raise ValueError(f"not a Shapes World object: {self.colour!r} {self.shape!r}")


@dataclass(frozen=True)
class Scene:
    """What one image shows; the caption is derived from it."""

    first: Thing  # the only object, or the subject of the relation
    size: str | None = None  # "small" or "large"; one-object scenes only
    relation: str | None = None  # one of RELATIONS; two-object scenes only
    second: Thing | None = None  # the relation's object; two-object scenes only

    def __post_init__(self) -> None:
        one = self.size in SIZES and self.relation is None and self.second is None
        two = self.size is None and self.relation in RELATIONS and self.second not in (None, self.first)
        if not (one or two):
            raise ValueError(f"not a Shapes World scene: {self!r}")

    @property
    def caption(self) -> str:
        """The scene's caption: lower case, single spaces, no final full stop."""
        if self.second is None:
            return f"a {self.size} {self.first.colour} {self.first.shape}"  # "small", "large": always "a"
        first, second = self.first, self.second
        return f"{_a(first.colour)} {first.shape} {self.relation} {_a(second.colour)} {second.shape}"

    @property
    def things(self) -> tuple[Thing, ...]:
        """The objects in caption order."""
        return (self.first,) if self.second is None else (self.first, self.second)


# ---------------------------------------------------------------- grammar and negatives


def _all_things() -> list[Thing]:
    return [Thing(colour, shape) for colour in COLOURS for shape in SHAPES]


def one_object_scenes() -> list[Scene]:
    """The 48 one-object scenes (2 sizes x 6 colours x 4 shapes), in a fixed order."""
    return [Scene(thing, size=size) for size in SIZES for thing in _all_things()]


def two_object_scenes() -> list[Scene]:
    """The 2,208 two-object scenes (24 x 23 ordered pairs x 4 relations), in a fixed order."""
    things = _all_things()
    return [Scene(a, relation=r, second=b) for a in things for b in things if a != b for r in RELATIONS]


def all_captions() -> list[str]:
    """The full grammar: 2,256 distinct captions (48 one-object, then 2,208 two-object)."""
    return [scene.caption for scene in one_object_scenes() + two_object_scenes()]


def _mirror(scene: Scene) -> Scene:
    """The same picture said the other way round (``X left of Y`` -> ``Y right of X``)."""
    assert scene.second is not None and scene.relation is not None  # callers pass two-object scenes
    return Scene(scene.second, relation=_REVERSED[scene.relation], second=scene.first)


def negatives_for(scene: Scene, rng: np.random.Generator) -> list[str]:
    """Hard-negative captions that are false for ``scene``'s image.

    One object: a different colour, a different shape (both drawn with ``rng``), the other
    size. Two objects: colours swapped, relation reversed, shapes swapped; a swap that
    gives back the caption itself (equal colours or equal shapes) is skipped.
    """
    if scene.second is None or scene.relation is None:  # Scene sets both or neither
        thing = scene.first
        colours, shapes = [c for c in COLOURS if c != thing.colour], [s for s in SHAPES if s != thing.shape]
        colour, shape = colours[rng.integers(len(colours))], shapes[rng.integers(len(shapes))]
        other = "large" if scene.size == "small" else "small"
        wrong = [replace(scene, first=Thing(colour, thing.shape)), replace(scene, first=Thing(thing.colour, shape))]
        wrong.append(replace(scene, size=other))
    else:
        a, b = scene.first, scene.second
        wrong = [
            replace(scene, first=Thing(b.colour, a.shape), second=Thing(a.colour, b.shape)),
            replace(scene, relation=_REVERSED[scene.relation]),
            replace(scene, first=Thing(a.colour, b.shape), second=Thing(b.colour, a.shape)),
        ]
    captions = [w.caption for w in wrong if w.caption != scene.caption]
    return list(dict.fromkeys(captions))


# ---------------------------------------------------------------- planning a split


def split_counts(count: int, two_object_share: float, split: str) -> tuple[int, int]:
    """``(one_object, two_object)`` line counts for a split of ``count`` lines.

    The share is exact (rounded). An eval split holds at most 48 one-object and 2,208
    two-object captions, so the share gives way where it would need more.
    Raises ValueError for an unknown split, EvalSplitTooLargeError past 2,256 eval lines.
    """
    if split not in ("eval", "train"):
        raise ValueError(f"split must be 'eval' or 'train', not {split!r}")
    if split == "eval" and count > MAX_EVAL_COUNT:
        raise EvalSplitTooLargeError(
            f"an eval split has at most {MAX_EVAL_COUNT} lines (every caption once), not {count}; "
            f"ask for --count {MAX_EVAL_COUNT} or fewer, or use --split train"
        )
    two = int(two_object_share * count + 0.5)
    if split == "eval":
        two = min(max(two, count - 48), 2208)
    return count - two, two


def _eval_two_object(rng: np.random.Generator, n: int) -> list[Scene]:
    """``n`` distinct two-object scenes, one per mirror class before any class is used twice."""
    classes = [s for s in two_object_scenes() if s.relation in ("to the left of", "above")]  # 1,104
    order = rng.permutation(len(classes))
    flip = rng.random(len(classes)) < 0.5
    picked = []
    for k in range(n):
        i = order[k % len(classes)]
        second_round = k >= len(classes)  # the other member of a class already used
        picked.append(_mirror(classes[i]) if flip[i] != second_round else classes[i])
    return picked


def plan_scenes(count: int, seed: int, two_object_share: float = 0.7, split: str = "eval") -> list[Scene]:
    """The seeded list of scenes of a split, in file order.

    Eval: every caption at most once. Train: captions drawn uniformly with replacement
    within each kind (one-object / two-object).
    """
    rng = np.random.default_rng([seed, 0])
    n_one, n_two = split_counts(count, two_object_share, split)
    ones, twos = one_object_scenes(), two_object_scenes()
    if split == "eval":
        scenes = [ones[i] for i in rng.permutation(len(ones))[:n_one]] + _eval_two_object(rng, n_two)
    else:
        scenes = [ones[i] for i in rng.integers(0, len(ones), n_one)]
        scenes += [twos[i] for i in rng.integers(0, len(twos), n_two)]
    return [scenes[i] for i in rng.permutation(count)]


# ---------------------------------------------------------------- geometry


def _outline(shape: str, side: float, rng: np.random.Generator) -> np.ndarray:
    """Polygon ``(k, 2)`` of ``shape`` around the origin: box centred there, larger box side == ``side``."""
    if shape == "circle":
        points, angle = _UNIT_CIRCLE, 0.0
    elif shape == "triangle":
        height = rng.uniform(0.85, 1.0)  # isosceles, apex up (image y grows downwards)
        points, angle = np.array([[0.0, -height / 2], [-0.5, height / 2], [0.5, height / 2]]), rng.uniform(-15, 15)
    else:
        points = np.array([[-0.5, -0.5], [0.5, -0.5], [0.5, 0.5], [-0.5, 0.5]])
        angle = rng.uniform(-15, 15) if shape == "square" else 45.0 + rng.uniform(-10, 10)
    a = np.deg2rad(angle)
    points = points @ np.array([[np.cos(a), np.sin(a)], [-np.sin(a), np.cos(a)]])
    low, high = points.min(axis=0), points.max(axis=0)
    return (points - (low + high) / 2) * (side / (high - low).max())


def _centroid(points: np.ndarray) -> np.ndarray:
    """Area centroid ``(2,)`` of a simple polygon ``(k, 2)`` (shoelace formula)."""
    x, y = points[:, 0], points[:, 1]
    x1, y1 = np.append(x[1:], x[0]), np.append(y[1:], y[0])
    cross = x * y1 - x1 * y
    return np.array([((x + x1) * cross).sum(), ((y + y1) * cross).sum()]) / (3.0 * cross.sum())


def _separated(p: np.ndarray, q: np.ndarray, margin: float) -> bool:
    """Whether convex polygons ``p`` and ``q`` are at least ``margin`` apart.

    Separating-axis test: the canvas axes first (cheap, and enough for most pairs), then
    both polygons' edge normals. A gap along any unit axis bounds the distance from below,
    so the answer is never a false yes (rarely a false no, which only costs a retry).
    """
    if np.maximum(q.min(axis=0) - p.max(axis=0), p.min(axis=0) - q.max(axis=0)).max() >= margin:
        return True
    for poly in (p, q):
        edges = np.vstack((poly[1:], poly[:1])) - poly
        normals = np.stack([edges[:, 1], -edges[:, 0]], axis=1)
        normals /= np.linalg.norm(normals, axis=1, keepdims=True)
        pp, qq = p @ normals.T, q @ normals.T  # (kp, m), (kq, m)
        if np.maximum(qq.min(axis=0) - pp.max(axis=0), pp.min(axis=0) - qq.max(axis=0)).max() >= margin:
            return True
    return False


def _axis_sign(relation: str) -> tuple[int, float]:
    """The relation's axis (0: x, 1: y) and the sign of the object's centre minus the subject's along it."""
    return int(relation in ("above", "below")), 1.0 if relation in ("to the left of", "above") else -1.0


def _relation_holds(p: np.ndarray, q: np.ndarray, relation: str, scale: float) -> bool:
    """Whether ``p`` is ``relation`` ``q`` by box centres and by area centroids, with the safety margin."""
    axis, sign = _axis_sign(relation)
    for centre in (lambda s: (s.min(axis=0) + s.max(axis=0)) / 2, _centroid):
        d = centre(q) - centre(p)
        if sign * d[axis] < (_MAIN_GAP + _SAFETY) * scale or abs(d[1 - axis]) > (_CROSS_GAP - _SAFETY) * scale:
            return False
    return True


def _bounds(outline: np.ndarray, size: int, scale: float) -> tuple[np.ndarray, np.ndarray]:
    """Lowest and highest centre ``(2,)`` each that keeps ``outline`` on the canvas."""
    return -outline.min(axis=0) + _EDGE * scale, size - outline.max(axis=0) - _EDGE * scale


def _place_pair(p: np.ndarray, q: np.ndarray, scene: Scene, size: int, rng: np.random.Generator) -> list | None:
    """Outlines ``p`` and ``q`` moved into ``scene.relation``, or None when this try fails."""
    scale = size / 64.0
    assert scene.relation is not None  # callers pass two-object scenes
    axis, sign = _axis_sign(scene.relation)
    (p_lo, p_hi), (q_lo, q_hi) = _bounds(p, size, scale), _bounds(q, size, scale)
    least = (_MAIN_GAP + _SAFETY) * scale
    most = (q_hi - p_lo)[axis] if sign > 0 else (p_hi - q_lo)[axis]
    if most < least:
        return None
    offset = np.zeros(2)
    offset[axis] = sign * rng.uniform(least, most)
    offset[1 - axis] = rng.uniform(-1.0, 1.0) * (_CROSS_GAP - _SAFETY) * scale
    low, high = np.maximum(p_lo, q_lo - offset), np.minimum(p_hi, q_hi - offset)
    if (low > high).any():
        return None
    centre = rng.uniform(low, high)
    p_at, q_at = p + centre, q + centre + offset
    if not _separated(p_at, q_at, _SEPARATION * scale) or not _relation_holds(p_at, q_at, scene.relation, scale):
        return None
    return [p_at, q_at]


def _layout(scene: Scene, size: int, rng: np.random.Generator) -> list[np.ndarray]:
    """Polygons ``(k, 2)`` in canvas pixels, one per object in caption order (rejection sampling)."""
    scale = size / 64.0
    for _ in range(_MAX_TRIES):
        if scene.size is not None:  # one object (Scene sets size exactly when there is no second)
            outline = _outline(scene.first.shape, rng.uniform(*_SIDES[scene.size]) * scale, rng)
            return [outline + rng.uniform(*_bounds(outline, size, scale))]
        p, q = (_outline(t.shape, rng.uniform(*_SIDES["pair"]) * scale, rng) for t in scene.things)
        placed = _place_pair(p, q, scene, size, rng)
        if placed is not None:
            return placed
    raise RuntimeError(f"could not lay out {scene.caption!r} on {size} px in {_MAX_TRIES} tries")


# ---------------------------------------------------------------- rendering and files


def _colour(anchor: tuple[int, int, int], spread: int, rng: np.random.Generator) -> np.ndarray:
    """``anchor`` with each channel moved by a whole number in -spread..spread, as float32 ``(3,)``."""
    return np.minimum(np.maximum(np.add(anchor, rng.integers(-spread, spread + 1, 3)), 0), 255).astype(np.float32)


def _coverage(polygon: np.ndarray, shape: str) -> tuple[int, int, np.ndarray]:
    """Share (0..1) of each pixel of ``polygon``'s box that the shape covers, from 4x4 samples.

    Returns the box's left and top pixel and the coverage ``(h, w)``. Circles are exact discs
    (their polygon only serves the overlap test); other shapes are convex polygons, tested
    edge by edge as ``p * y >= q * x + r`` so each edge costs one broadcast comparison.
    """
    (x0, y0), (x1, y1) = np.floor(polygon.min(axis=0)).astype(int), np.ceil(polygon.max(axis=0)).astype(int)
    xs = (np.arange(x0, x1, dtype=np.float32)[:, None] + _OFFSETS).reshape(1, -1)  # (1, 4w) sample x
    ys = (np.arange(y0, y1, dtype=np.float32)[:, None] + _OFFSETS).reshape(-1, 1)  # (4h, 1) sample y
    if shape == "circle":
        (cx, cy), radius = (polygon.min(axis=0) + polygon.max(axis=0)) / 2, np.ptp(polygon[:, 0]) / 2
        inside = (xs - np.float32(cx)) ** 2 <= np.float32(radius**2) - (ys - np.float32(cy)) ** 2
    else:
        (ux, uy), (vx, vy) = polygon[1] - polygon[0], polygon[2] - polygon[1]
        turn = np.sign(ux * vy - uy * vx)  # vertex order: which side of each edge is inside
        inside = np.ones((ys.size, xs.size), dtype=bool)
        for (ax, ay), (bx, by) in zip(polygon, np.vstack((polygon[1:], polygon[:1]))):
            p, q = turn * (bx - ax), turn * (by - ay)
            inside &= np.float32(p) * ys >= np.float32(q) * xs + np.float32(p * ay - q * ax)
    samples = inside.view(np.uint8).reshape(y1 - y0, _SUPERSAMPLE, x1 - x0, _SUPERSAMPLE)
    return x0, y0, samples.sum(axis=(1, 3), dtype=np.float32) / np.float32(_SUPERSAMPLE**2)


def _pixels(scene: Scene, size: int, rng: np.random.Generator) -> np.ndarray:
    """The image of ``scene`` as uint8 ``(size, size, 3)``; see ``render``."""
    grey = int(rng.integers(198, 233))
    image = np.empty((size, size, 3), dtype=np.float32)
    image[:] = _colour((grey, grey, grey), 7, rng)
    for thing, polygon in zip(scene.things, _layout(scene, size, rng)):
        x0, y0, cover = _coverage(polygon, thing.shape)
        box = image[y0 : y0 + cover.shape[0], x0 : x0 + cover.shape[1]]  # objects never overlap
        box += cover[:, :, None] * (_colour(COLOURS[thing.colour], _JITTER, rng) - box)
    noise = rng.standard_normal((size, size, 1), dtype=np.float32) * np.float32(rng.uniform(0.0, 2.0))
    image += np.clip(noise, -5.0, 5.0, out=noise)
    return (np.clip(image, 0.0, 255.0, out=image) + 0.5).astype(np.uint8)  # round half up


def render(scene: Scene, size: int, rng: np.random.Generator) -> Image.Image:
    """One RGB ``size`` x ``size`` image of ``scene``, drawn with ``rng``.

    Light near-neutral background (channels 191..239, within 14 of each other), filled shapes
    anti-aliased by area (4x4 samples per pixel), then mild grey noise (same on all channels,
    |n| <= 5).
    """
    return Image.fromarray(_pixels(scene, size, rng), "RGB")


def _png(pixels: np.ndarray) -> bytes:
    """PNG file bytes of uint8 RGB ``(H, W, 3)`` pixels: zlib level 1, no row filter.

    Written by hand because PIL's encoder costs more than drawing the image.
    """
    height, width, _ = pixels.shape
    rows = np.zeros((height, width * 3 + 1), dtype=np.uint8)  # filter byte 0, then the row
    rows[:, 1:] = pixels.reshape(height, -1)

    chunks = ((b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)),  # 8-bit RGB
              (b"IDAT", zlib.compress(rows.tobytes(), 1)), (b"IEND", b""))  # fmt: skip
    body = (struct.pack(">I", len(d)) + t + d + struct.pack(">I", zlib.crc32(t + d)) for t, d in chunks)
    return b"\x89PNG\r\n\x1a\n" + b"".join(body)


def _check(out: Path, count: int, seed: int, size: int, two_object_share: float, split: str) -> None:
    split_counts(count, two_object_share, split)  # raises for a bad split or an eval split too large
    if count < 1 or seed < 0 or size < 16 or not 0.0 <= two_object_share <= 1.0:
        raise ValueError("need count >= 1, seed >= 0, size >= 16 and 0 <= two-object share <= 1")
    if out.exists() and any(out.iterdir()):
        raise FileExistsError(f"{out} is not empty; delete it or choose a new folder")


def generate(
    out: Path, count: int, seed: int, size: int = 64, two_object_share: float = 0.7, split: str = "eval"
) -> Path:
    """Write a Shapes World pairs folder and return the path of its ``pairs.jsonl``.

    Args: ``out`` a new or empty folder; ``count`` lines (eval: at most 2,256); ``seed`` >= 0
    (same arguments -> byte-identical files); ``size`` canvas side in px; ``two_object_share``
    exact share of two-object lines (see ``split_counts``); ``split`` "eval" or "train".
    Raises EvalSplitTooLargeError (a ValueError), ValueError, FileExistsError.
    """
    out = Path(out)
    _check(out, count, seed, size, two_object_share, split)
    scenes = plan_scenes(count, seed, two_object_share, split)
    (out / "images").mkdir(parents=True, exist_ok=True)
    negative_rng = np.random.default_rng([seed, 2])
    lines = []
    for index, scene in enumerate(scenes):
        name = f"images/{index:06d}.png"
        (out / name).write_bytes(_png(_pixels(scene, size, np.random.default_rng([seed, 1, index]))))
        record = {"image": name, "caption": scene.caption, "negatives": negatives_for(scene, negative_rng)}
        lines.append(json.dumps(record) + "\n")
    n_one, n_two = split_counts(count, two_object_share, split)
    meta = {"schema": 1, "generator": "xmr retrieval/training/shapes_world.py", "generator_version": GENERATOR_VERSION,
            "count": count, "seed": seed, "size": size, "two_object_share": two_object_share, "split": split,
            "one_object_lines": n_one, "two_object_lines": n_two}  # fmt: skip
    _write_atomic(out / "shapes_world.json", json.dumps(meta, indent=2) + "\n")
    return _write_atomic(out / "pairs.jsonl", "".join(lines))


def _write_atomic(path: Path, text: str) -> Path:
    """Write ``text`` under a temporary name, flush it to disk, then rename it into place."""
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "w", encoding="utf-8") as handle:
        handle.write(text)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(tmp, path)
    return path
