"""A video's identity: read from a few blocks of any size of file, shared by copies, never by two videos."""

from __future__ import annotations

import builtins
import shutil
import struct
from pathlib import Path

import numpy as np
import pytest

import retrieval.video.identity as identity_module
from retrieval.video.identity import BLOCK, EDGE, SPREAD, block_ranges, video_identity
from tests.helpers.videos import EDITED, PHONE, write_slideshow


def _box(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I4s", 8 + len(body), kind) + body


def test_a_large_file_is_known_from_a_few_blocks_and_its_copy_matches(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    big = tmp_path / "big.mkv"
    with open(big, "wb") as handle:  # 3 GiB, sparse: nothing is written but the ends
        handle.write(b"\x1a\x45\xdf\xa3" + b"head" * 1000)
        handle.seek(3 * 2**30 - 4000)
        handle.write(b"tail" * 1000)
    read = 0
    real_open = builtins.open

    class Counting:
        def __init__(self, *args: object, **kwargs: object) -> None:
            self.inner = real_open(*args, **kwargs)  # type: ignore[call-overload]

        def __enter__(self) -> Counting:
            return self

        def __exit__(self, *exc: object) -> None:
            self.inner.close()

        def read(self, size: int = -1) -> bytes:
            nonlocal read
            data = self.inner.read(size)
            read += len(data)
            return data

        def __getattr__(self, name: str) -> object:
            return getattr(self.inner, name)

    monkeypatch.setattr(identity_module, "open", Counting, raising=False)
    first = video_identity(big)
    assert read <= 2 * EDGE + SPREAD * BLOCK + 64  # ~1.5 MiB of 3 GiB
    monkeypatch.undo()
    copy = tmp_path / "copy.mkv"
    shutil.copyfile(big, copy)
    assert video_identity(copy) == first


def test_a_change_in_any_sampled_block_or_in_the_moov_box_changes_it(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    media = rng.integers(0, 256, 6 * 2**20, dtype=np.uint8).tobytes()
    moov = _box(b"moov", rng.integers(0, 256, 400_000, dtype=np.uint8).tobytes())  # frame tables of a long video
    data = _box(b"ftyp", b"isom\x00\x00\x02\x00isom") + _box(b"mdat", media) + moov
    path = tmp_path / "film.mp4"
    path.write_bytes(data)
    original = video_identity(path)
    sampled = block_ranges(len(data))
    moov_at = len(data) - len(moov)
    in_gap = next(o for o in range(moov_at + 16, len(data), 997) if not any(a <= o < a + n for a, n in sampled))
    for offset in [a + n // 2 for a, n in sampled] + [in_gap]:
        changed = bytearray(data)
        changed[offset] ^= 0xFF
        path.write_bytes(bytes(changed))
        assert video_identity(path) != original, offset


def test_small_files_are_hashed_whole(tmp_path: Path) -> None:
    path = tmp_path / "small.avi"
    data = bytearray(np.random.default_rng(1).integers(0, 256, 300_000, dtype=np.uint8).tobytes())
    path.write_bytes(bytes(data))
    assert block_ranges(len(data)) == [(0, len(data))]
    original = video_identity(path)
    data[150_000] ^= 1
    path.write_bytes(bytes(data))
    assert video_identity(path) != original


def test_no_two_different_videos_share_an_identity(tmp_path: Path, film_photos: dict) -> None:
    """Videos of the same photos and settings, edits of one video, and same-size files all differ."""
    photos = list(film_photos.items())
    made: list[Path] = []
    for i in range(8):  # same photos, other timings and pans; both keyframe styles; three containers
        order = photos[i % 3 :] + photos[: i % 3]
        path = tmp_path / f"v{i}.{('mp4', 'mkv', 'avi')[i % 3]}"
        write_slideshow(path, order[:3], (2.0 + 0.1 * i, 2.5, 2.2), seed=i, gop=(PHONE, EDITED)[i % 2])
        made.append(path)
    base = made[0]
    same_but_one_frame = tmp_path / "one-frame.mp4"  # the same film with one photo swapped for the last second
    write_slideshow(same_but_one_frame, photos[:2] + [photos[5]], (2.0, 2.5, 2.2), seed=0, gop=PHONE)
    made.append(same_but_one_frame)
    retagged = tmp_path / "retagged.mp4"  # the same frames, another date of the same length in the container
    write_slideshow(
        retagged,
        photos[:3],
        (2.0, 2.5, 2.2),
        seed=0,
        gop=PHONE,
        metadata={"creation_time": "2024-01-02T03:04:05.000000Z"},
    )
    again = tmp_path / "again.mp4"
    write_slideshow(
        again, photos[:3], (2.0, 2.5, 2.2), seed=0, gop=PHONE, metadata={"creation_time": "2024-01-02T03:04:06.000000Z"}
    )
    assert retagged.stat().st_size == again.stat().st_size
    made += [retagged, again]
    trimmed = tmp_path / "trimmed.mp4"
    trimmed.write_bytes(base.read_bytes()[:-10])
    made.append(trimmed)
    size = max(p.stat().st_size for p in made) + 1
    for path in list(made):  # every file padded to one size: only the content can tell them apart
        padded = tmp_path / f"padded-{path.name}"
        padded.write_bytes(path.read_bytes().ljust(size, b"\0"))
        made.append(padded)
    identities = {video_identity(p) for p in made}
    assert len(identities) == len(made)
    assert video_identity(shutil.copy(base, tmp_path / "copy.mp4")) == video_identity(base)
