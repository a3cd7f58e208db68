"""Moments: a cut or a changed picture starts one, repeats extend it, and together they tile the video."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from retrieval.video.config import SampleConfig
from retrieval.video.frames import Sample, VideoReader
from retrieval.video.moments import MomentGrouper
from retrieval.video.scenes import SceneConfig, signature_of
from tests.helpers.videos import EDITED, PHONE, write_frames, write_slideshow


def _sample(time: float, rgb: tuple[int, int, int], cut: bool = False, noise: int = 0) -> Sample:
    pixels = np.full((18, 32, 3), rgb, np.int16) + np.random.default_rng(int(time * 10)).integers(
        -noise, noise + 1, (18, 32, 3)
    )
    pixels = pixels.clip(0, 255).astype(np.uint8)
    return Sample(time, Image.fromarray(pixels), signature_of(pixels), cut)


def test_repeats_extend_a_moment_and_changes_start_one() -> None:
    grouper = MomentGrouper(SceneConfig())
    samples = [
        _sample(0.0, (100, 100, 100), cut=True),
        _sample(2.0, (101, 100, 99), noise=3),  # the same picture, a little sensor noise
        _sample(4.0, (100, 100, 100), noise=3),
        _sample(6.0, (160, 60, 60)),  # the picture changed (no cut seen)
        _sample(7.5, (30, 200, 40), cut=True),
    ]
    closed = [m for s in samples if (m := grouper.add(s)) is not None]
    closed += list(grouper.finish(9.0))
    assert [(m.start, m.end) for m in closed] == [(0.0, 6.0), (6.0, 7.5), (7.5, 9.0)]
    assert [m.sample.time for m in closed] == [0.0, 6.0, 7.5]  # each is shown by its first frame


def test_a_still_video_is_one_moment_and_a_slideshow_one_or_more_per_photo(tmp_path: Path, film_photos: dict) -> None:
    still = tmp_path / "still.mp4"
    frame = np.asarray(next(iter(film_photos.values())).resize((96, 64)))
    write_frames(still, iter([frame] * 120), fps=10)  # 12 s of one picture
    assert _moments(still) == [(0.0, 12.0)]
    for gop in (PHONE, EDITED):
        film = tmp_path / f"film-{gop}.mp4"
        shots = write_slideshow(film, list(film_photos.items())[:4], (3.0, 5.0, 4.0, 6.0), gop=gop)
        moments = _moments(film)
        assert moments[0][0] == 0.0 and abs(moments[-1][1] - shots[-1].end) < 0.15
        assert all(a[1] == b[0] for a, b in zip(moments, moments[1:]))  # they tile the timeline
        late = 1.0 if gop == PHONE else 0.0
        for shot in shots:  # every photo starts a moment (at its keyframe when only keyframes are read)
            assert any(shot.start - 1e-6 <= start <= shot.start + late + 1e-6 for start, _ in moments), (shot, moments)


def _moments(path: Path) -> list[tuple[float, float]]:
    config = SampleConfig()
    grouper = MomentGrouper(config.scenes)
    with VideoReader(path) as reader:
        out = [(m.start, m.end) for s in reader.samples(config) if (m := grouper.add(s)) is not None]
        out += [(m.start, m.end) for m in grouper.finish(reader.info.duration)]
    return [(round(a, 3), round(b, 3)) for a, b in out]
