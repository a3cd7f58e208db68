"""Image queries framed like video frames: the crops, the shapes of a library's videos, the merge."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from index.vectors import Neighbors
from retrieval.search.framing import MOST_SHAPES, frame_crop, frame_shapes, merge_neighbors


def _picture(width: int, height: int) -> Image.Image:
    """A picture whose every pixel says where it is (red: x, green: y)."""
    x = np.linspace(0, 255, width)[None, :].repeat(height, 0)
    y = np.linspace(0, 255, height)[:, None].repeat(width, 1)
    return Image.fromarray(np.stack([x, y, np.zeros_like(x)], -1).astype(np.uint8))


@pytest.mark.parametrize(
    ("size", "aspect", "box"),
    [
        ((400, 300), 16 / 9, (0, 38, 400, 263)),  # 4:3 in a 16:9 frame: the top and bottom go
        ((300, 400), 16 / 9, (0, 116, 300, 285)),  # portrait in landscape: a band across the middle
        ((640, 360), 9 / 16, (219, 0, 421, 360)),  # 16:9 in a portrait phone video: the middle strip
        ((500, 500), 3 / 2, (0, 83, 500, 416)),
    ],
)
def test_the_crop_is_what_a_frame_of_that_shape_shows_of_the_picture(
    size: tuple[int, int], aspect: float, box: tuple[int, int, int, int]
) -> None:
    picture = _picture(*size)
    crop = frame_crop(picture, aspect)
    assert crop is not None
    assert np.array_equal(np.asarray(crop), np.asarray(picture.crop(box)))
    assert abs(crop.width / crop.height - aspect) / aspect < 0.01
    left, top, right, bottom = box  # centred: as much cut on either side, to a pixel
    assert abs(left - (size[0] - right)) <= 1 and abs(top - (size[1] - bottom)) <= 1


def test_a_picture_of_the_frames_shape_is_not_cropped() -> None:
    assert frame_crop(_picture(1920, 1080), 16 / 9) is None
    assert frame_crop(_picture(854, 480), 16 / 9) is None  # within 2 %
    assert frame_crop(_picture(800, 480), 16 / 9) is not None  # 6 % narrower
    assert frame_crop(_picture(1, 200), 16 / 9) is not None  # a one-pixel line still has a middle
    assert frame_crop(_picture(1, 1), 100.0) is None  # nothing left to show


def test_sizes_of_one_aspect_are_one_shape_the_most_shown_first() -> None:
    ids = {
        (1920, 1080): np.array([1, 5, 9]),
        (1280, 720): np.array([2, 3]),
        (854, 480): np.array([40]),
        (1080, 1920): np.array([4, 6, 7, 8, 10, 11]),
        (640, 480): np.array([20]),
        (0, 480): np.array([30]),  # no size known: no shape
        (480, 480): np.array([], dtype=np.int64),  # no moment: no shape
    }
    shapes = frame_shapes(ids)
    assert [round(s.aspect, 4) for s in shapes] == [0.5625, round(16 / 9, 4), round(4 / 3, 4)]
    assert [s.moments.tolist() for s in shapes] == [[4, 6, 7, 8, 10, 11], [1, 2, 3, 5, 9, 40], [20]]
    assert shapes[1].aspect == 1920 / 1080  # the shape's aspect is that of its size with most moments
    assert len(frame_shapes({(100 + i, 100): np.array([i]) for i in range(0, 100, 5)})) == MOST_SHAPES
    assert frame_shapes({}) == []


def test_merged_neighbours_are_the_brute_force_top_k_of_the_best_score() -> None:
    """Each framed query scores only its own ids; an id takes its best score over the plain query and
    the framed ones that score it. The merge of each search's top k is that ranking's top k."""
    rng = np.random.default_rng(5)
    n, k = 200, 12
    for _ in range(50):
        plain = rng.random(n).astype(np.float32)
        scopes = [np.sort(rng.choice(n, size=int(rng.integers(1, n)), replace=False)) for _ in range(2)]
        framed = [rng.random(n).astype(np.float32) for _ in scopes]
        best = plain.copy()
        for scores, scope in zip(framed, scopes):
            best[scope] = np.maximum(best[scope], scores[scope])

        def top(scores: np.ndarray, ids: np.ndarray) -> Neighbors:
            order = ids[np.argsort(-scores[ids], kind="stable")][:k]
            return Neighbors(scores=scores[order], ids=order.astype(np.int64))

        merged = merge_neighbors(top(plain, np.arange(n)), [top(s, ids) for s, ids in zip(framed, scopes)], k)
        want = np.argsort(-best, kind="stable")[:k]
        assert merged.ids.tolist() == want.tolist()
        np.testing.assert_array_equal(merged.scores, best[want])
        assert merged.scores.dtype == np.float32 and merged.ids.dtype == np.int64
