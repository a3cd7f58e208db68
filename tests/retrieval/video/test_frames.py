"""Sampling frames: every interval and at scene cuts, upright, from any container; broken files fail typed."""

from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from retrieval.errors import VideoDecodeError
from retrieval.video.config import SampleConfig
from retrieval.video.frames import VideoReader
from retrieval.video.probe import capture_time
from tests.helpers.videos import EDITED, PHONE, write_frames, write_slideshow

SECONDS = (3.0, 5.2, 4.1, 3.6)


def _film(tmp_path: Path, photos: dict[str, Image.Image], gop: str, name: str = "film.mp4", **kw: object):
    chosen = list(photos.items())[: len(SECONDS)]
    return tmp_path / name, write_slideshow(tmp_path / name, chosen, SECONDS, gop=gop, **kw)


@pytest.mark.parametrize("gop", [PHONE, EDITED])
def test_samples_come_every_interval_and_at_each_cut(tmp_path: Path, film_photos: dict, gop: str) -> None:
    path, shots = _film(tmp_path, film_photos, gop)
    config = SampleConfig(interval=2.0)
    with VideoReader(path) as reader:
        samples = list(reader.samples(config))
        assert reader.stats.keyframes_only == (gop == PHONE)  # phones key every second: keyframes suffice
    times = [s.time for s in samples]
    assert times == sorted(times) and times[0] == 0.0
    late = 1.0 if gop == PHONE else 0.0  # keyframes only: a cut is seen at the next keyframe
    for shot in shots[1:]:
        cut = [s for s in samples if s.cut and shot.start - 1e-6 <= s.time <= shot.start + late + 1e-6]
        assert len(cut) == 1, (shot, [(s.time, s.cut) for s in samples])
    for shot in shots:  # within a shot, no gap longer than the interval (plus a keyframe's late start)
        inside = [s.time for s in samples if shot.start <= s.time < shot.end]
        gaps = np.diff([shot.start, *inside, shot.end])
        assert gaps.max() <= config.interval + late + 0.11, (shot, inside)
    assert sum(s.cut for s in samples) == len(shots)  # the first sample and one per cut, no pan taken for a cut


def test_probe_reads_what_the_container_says(tmp_path: Path, film_photos: dict) -> None:
    path, shots = _film(
        tmp_path,
        film_photos,
        PHONE,
        size=(96, 64),
        rotation=90,
        metadata={"creation_time": "2023-07-14T09:30:00.000000Z"},
    )
    with VideoReader(path) as reader:
        info = reader.info
    assert info.codec in ("h264", "mpeg4")
    assert (info.width, info.height) == (64, 96)  # upright: a quarter turn swaps the sides
    assert info.rotation == 90 and info.fps == 10.0
    assert abs(info.duration - shots[-1].end) < 0.15
    utc = datetime(2023, 7, 14, 9, 30, tzinfo=timezone.utc)
    assert info.captured_at == utc.astimezone().replace(tzinfo=None)  # local time, like a photo's EXIF


def test_capture_time_prefers_the_local_wall_clock_and_refuses_zero_dates() -> None:
    tags = {
        "creation_time": "2024-05-01T10:00:00.000000Z",
        "com.apple.quicktime.creationdate": "2024-05-01T12:00:00+0200",
    }
    assert capture_time(tags) == datetime(2024, 5, 1, 12, 0)  # where it was taken, as the camera's clock said
    assert capture_time({"creation_time": "1904-01-01T00:00:00.000000Z"}) is None  # MP4's "not set"
    assert capture_time({"creation_time": "yesterday"}) is None
    assert capture_time({}) is None


@pytest.mark.parametrize("rotation", [90, 180, 270])
def test_rotated_videos_are_sampled_upright(tmp_path: Path, rotation: int) -> None:
    picture = np.zeros((48, 96, 3), np.uint8)
    picture[:16, :24] = (255, 0, 0)  # a red block in the top-left corner
    picture[-16:, -24:] = (0, 0, 255)
    path = tmp_path / "turned.mp4"
    write_frames(path, iter([picture] * 10), fps=10, rotation=rotation)
    with VideoReader(path) as reader:
        (first, *_) = reader.samples()
    upright = np.asarray(
        Image.fromarray(picture).rotate(rotation, expand=True)
    )  # counter-clockwise, as the matrix says
    got = np.asarray(first.image.resize((upright.shape[1], upright.shape[0])))
    assert got.shape == upright.shape
    assert np.abs(got.astype(int) - upright).mean() < 12


def test_resume_starts_at_the_time_asked(tmp_path: Path, film_photos: dict) -> None:
    path, shots = _film(tmp_path, film_photos, EDITED)
    with VideoReader(path) as reader:
        full = [s.time for s in reader.samples()]
    with VideoReader(path) as reader:
        resumed = [s.time for s in reader.samples(start=full[4])]
    assert resumed == full[4:]  # the same frames: a resumed run continues where the last one stopped


def test_frame_at_shows_the_frame_of_that_time(tmp_path: Path, film_photos: dict) -> None:
    path, shots = _film(tmp_path, film_photos, PHONE)
    with VideoReader(path) as reader:
        samples = list(reader.samples(SampleConfig(keyframes="off")))
        wanted = samples[3]
        shown = np.asarray(reader.frame_at(wanted.time, 448), np.float32)
    assert np.abs(shown - np.asarray(wanted.image, np.float32)).mean() < 2.0


@pytest.mark.parametrize("suffix", ["mp4", "mov", "m4v", "mkv", "webm", "avi", "3gp"])
def test_every_container_is_read(tmp_path: Path, film_photos: dict, suffix: str) -> None:
    size = (176, 144) if suffix == "3gp" else (96, 64)  # 3GP's MPEG-4 wants a phone size
    path, shots = _film(tmp_path, film_photos, PHONE, name=f"film.{suffix}", size=size)
    with VideoReader(path) as reader:
        samples = list(reader.samples())
        assert abs(reader.info.duration - shots[-1].end) < 0.3
    assert len(samples) >= len(shots)


def test_files_that_are_not_videos_fail_with_the_reason(tmp_path: Path, film_photos: dict) -> None:
    import av

    text = tmp_path / "notes.mp4"
    text.write_text("not a video\n" * 50)
    with pytest.raises(VideoDecodeError, match="not a video"):
        VideoReader(text)
    empty = tmp_path / "empty.mov"
    empty.write_bytes(b"")
    with pytest.raises(VideoDecodeError):
        VideoReader(empty)
    path, _ = _film(tmp_path, film_photos, PHONE)
    cut = tmp_path / "cut.mp4"
    cut.write_bytes(path.read_bytes()[: path.stat().st_size // 2])  # its index (moov) was at the end
    with pytest.raises(VideoDecodeError):
        VideoReader(cut)
    sound = tmp_path / "sound.mkv"
    with av.open(str(sound), "w") as out:
        stream = out.add_stream("flac", rate=8000)
        frame = av.AudioFrame.from_ndarray(np.zeros((1, 800), np.int16), format="s16", layout="mono")
        frame.sample_rate, frame.pts = 8000, 0
        out.mux(stream.encode(frame))
        out.mux(stream.encode(None))
    with pytest.raises(VideoDecodeError, match="no video stream"):
        VideoReader(sound)


def test_damaged_middle_is_skipped_not_fatal(tmp_path: Path, film_photos: dict) -> None:
    path, shots = _film(tmp_path, film_photos, PHONE, name="film.mkv")
    data = bytearray(path.read_bytes())
    middle = len(data) // 2
    data[middle : middle + 3000] = np.random.default_rng(0).integers(0, 256, 3000, dtype=np.uint8).tobytes()
    damaged = tmp_path / "damaged.mkv"
    damaged.write_bytes(bytes(data))
    with VideoReader(damaged) as reader:
        samples = list(reader.samples())
    assert samples[0].time == 0.0 and samples[-1].time > shots[-1].start  # frames on both sides of the damage
