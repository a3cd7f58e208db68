"""Videos in index runs: the guarantees of photos (skip, move, copy, edit, fail, resume), without PyAV too."""

from __future__ import annotations

import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from index.catalog import Catalog, sqlite_url
from index.errors import MissingDependencyError
from retrieval.ingest.config import IngestConfig
from retrieval.library import Library
from tests.helpers.text_images import render_words
from tests.helpers.videos import EDITED, PHONE, scikit_photos, write_slideshow

pytest.importorskip("av", reason="the video extra (PyAV) is not installed")

REPO = Path(__file__).resolve().parents[3]


@pytest.fixture(scope="module")
def film_photos() -> dict:
    return scikit_photos()


def _film(path: Path, photos: dict, first: int = 0, seconds: tuple[float, ...] = (3.0, 4.5, 3.5), **kw: object):
    chosen = list(photos.items())[first : first + len(seconds)]
    path.parent.mkdir(parents=True, exist_ok=True)
    return write_slideshow(path, chosen, seconds, **kw)


def _open(tmp_path: Path, model: Path) -> Library:
    return Library.open(tmp_path / "library", model=f"local-dir:{model}", device="cpu")


def _moments(lib: Library, path: Path) -> list[tuple[int, float, float]]:
    row = lib.catalog.image_by_path(str(path))
    assert row is not None
    return [(m.id, m.start, m.end) for m in lib.catalog.moments_of(row.id)]


def _known_file(lib: Library, path: Path) -> bool:
    """Whether the catalog row of ``path`` says which file it is (device, inode, size, mtime): what /file serves."""
    row = lib.catalog.image_by_path(str(path))
    return row is not None and row.stat.same_file(os.stat(path))


def test_videos_are_indexed_with_the_photos_and_skipped_when_unchanged(
    tmp_path: Path, tiny_model_dir: Path, film_photos: dict
) -> None:
    media = tmp_path / "media"
    shots = _film(media / "a.mp4", film_photos, gop=PHONE, metadata={"creation_time": "2022-08-01T10:00:00.000000Z"})
    _film(media / "nested" / "b.mkv", film_photos, first=3, gop=EDITED)
    film_photos["coins"].save(media / "photo.jpg")
    with _open(tmp_path, tiny_model_dir) as lib:
        report = lib.index([media])
        assert (report.added, report.failed, report.videos) == (3, 0, 2)
        assert report.moments == lib.info().moments >= 6 and report.encoded == report.moments + 1
        info = lib.info()
        assert (info.images, info.videos, info.vectors) == (1, 2, report.moments + 1)
        row = lib.catalog.image_by_path(str(media / "a.mp4"))
        video = lib.catalog.video(row.id)  # type: ignore[union-attr]
        assert row.kind == "video" and row.format == "MP4" and (row.width, row.height) == (96, 64)  # type: ignore[union-attr]
        assert row.size == (media / "a.mp4").stat().st_size and row.captured_at is not None  # type: ignore[union-attr]
        assert video is not None and video.codec in ("h264", "mpeg4") and abs(video.duration - shots[-1].end) < 0.15
        assert video.done == pytest.approx(video.duration, abs=0.15)
        assert lib.images.agrees_with_catalog()
        again = lib.index([media])
        assert (again.added, again.updated, again.unchanged, again.encoded, again.videos) == (0, 0, 3, 0, 0)


def test_moved_copied_touched_and_edited_videos(tmp_path: Path, tiny_model_dir: Path, film_photos: dict) -> None:
    media = tmp_path / "media"
    _film(media / "a.mp4", film_photos)
    with _open(tmp_path, tiny_model_dir) as lib:
        lib.index([media])
        before = _moments(lib, media / "a.mp4")
        (media / "trip").mkdir()
        shutil.move(media / "a.mp4", media / "trip" / "a.mp4")
        moved = lib.index([media])
        assert (moved.moved, moved.encoded, moved.removed) == (1, 0, 0)
        assert _moments(lib, media / "trip" / "a.mp4") == before  # the same rows: ids, times and vectors kept
        assert _known_file(lib, media / "trip" / "a.mp4")  # the moved file's identity, as for a photo
        shutil.copy(media / "trip" / "a.mp4", media / "copy.mp4")
        copied = lib.index([media])
        assert (copied.added, copied.encoded, copied.moments) == (1, 0, 0)
        assert _known_file(lib, media / "copy.mp4")
        copies = _moments(lib, media / "copy.mp4")
        assert [(s, e) for _, s, e in copies] == [(s, e) for _, s, e in before] and not {i for i, *_ in copies} & {
            i for i, *_ in before
        }
        vectors = lib.catalog.vectors_for([i for i, *_ in before + copies])
        assert [vectors[i] for i, *_ in copies] == [vectors[i] for i, *_ in before]
        os.utime(media / "copy.mp4", ns=(time.time_ns(), time.time_ns() + 10**9))  # touched, not changed
        touched = lib.index([media])
        assert (touched.unchanged, touched.encoded, touched.updated) == (2, 0, 0) and _moments(
            lib, media / "copy.mp4"
        ) == copies
        assert _known_file(lib, media / "copy.mp4")  # the new time is recorded with the file's identity
        _film(media / "copy.mp4", film_photos, first=2, seconds=(2.5, 2.5))  # edited in place: other content
        edited = lib.index([media])
        assert (edited.updated, edited.added) == (1, 0) and edited.encoded == edited.moments > 0
        after = _moments(lib, media / "copy.mp4")
        assert not {i for i, *_ in after} & {i for i, *_ in copies} and after[-1][2] == pytest.approx(5.0, abs=0.15)
        assert _known_file(lib, media / "copy.mp4") and _known_file(lib, media / "trip" / "a.mp4")
        assert lib.images.agrees_with_catalog()
        (media / "copy.mp4").unlink()
        assert lib.index([media]).removed == 1 and lib.info().moments == len(before)
        assert lib.images.agrees_with_catalog()


def test_a_broken_video_is_reported_and_the_run_goes_on(
    tmp_path: Path, tiny_model_dir: Path, film_photos: dict
) -> None:
    media = tmp_path / "media"
    _film(media / "good.mov", film_photos)
    (media / "notes.mp4").write_text("not a video\n" * 40)
    good = (media / "good.mov").read_bytes()
    (media / "cut.mp4").write_bytes(good[: len(good) // 3])  # its index (moov) is at the end: nothing to read
    (media / "empty.webm").write_bytes(b"")
    with _open(tmp_path, tiny_model_dir) as lib:
        report = lib.index([media])
        assert (report.added, report.failed) == (1, 3)
        reasons = dict(report.failures)
        assert set(reasons) == {str(media / n) for n in ("notes.mp4", "cut.mp4", "empty.webm")}
        assert all(reasons.values())
        assert dict(lib.failures()) == reasons
        assert lib.index([media]).failed == 0  # unchanged failures are not read again
        assert lib.index([media], config=IngestConfig(retry_failed=True)).failed == 3


def test_without_video_support_videos_are_counted_and_listed_once(
    tmp_path: Path, tiny_model_dir: Path, film_photos: dict, monkeypatch: pytest.MonkeyPatch
) -> None:
    import retrieval.video.formats as formats

    media = tmp_path / "media"
    _film(media / "a.mp4", film_photos)
    _film(media / "b.mkv", film_photos, first=2)
    film_photos["coins"].save(media / "photo.jpg")
    with _open(tmp_path, tiny_model_dir) as lib:
        lib.index([media])
        indexed = _moments(lib, media / "a.mp4")
        shutil.move(media / "a.mp4", media / "moved.mp4")  # moves need no decoding: still followed
        _film(media / "c.mp4", film_photos, first=3)

        def missing() -> None:
            raise MissingDependencyError(formats.VIDEO_HINT)

        monkeypatch.setattr(formats, "require_av", missing)
        report = lib.index([media])
        assert report.skipped == (str(media / "c.mp4"),) and "xmr[video]" in report.skipped_reason
        assert (report.added, report.failed, report.moved, report.videos) == (0, 0, 1, 0)
        assert _moments(lib, media / "moved.mp4") == indexed
        assert lib.catalog.image_by_path(str(media / "c.mp4")) is None  # not failed: read once support is there
        monkeypatch.undo()
        assert lib.index([media]).added == 1


def test_without_pyav_the_cli_says_so_once(tmp_path: Path, tiny_model_dir: Path, film_photos: dict) -> None:
    media = tmp_path / "media"
    for i in range(3):
        _film(media / f"v{i}.mp4", film_photos, first=i, seconds=(2.0,))
    film_photos["coins"].save(media / "photo.jpg")
    code = "import sys; sys.modules['av'] = None; from cli import main; sys.argv[0] = 'xmr'; main()"
    command = [
        sys.executable,
        "-c",
        code,
        "index",
        str(media),
        "--library",
        str(tmp_path / "lib"),
        "--model",
        f"local-dir:{tiny_model_dir}",
        "--device",
        "cpu",
    ]
    done = subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert done.stderr.count("xmr[video]") == 1, done.stderr  # one line for all of them
    assert "3 videos" in done.stderr and all(f"v{i}.mp4" in done.stderr for i in range(3))


def test_ocr_and_duplicates_take_photos_only(tmp_path: Path, tiny_model_dir: Path, film_photos: dict) -> None:
    """OCR reads the photos, never a video (on the run that adds it nor on later ones); a copied
    video is not a duplicate group (its moments are no photos), a copied photo is; a video's name
    is keyword data all the same."""
    pytest.importorskip("rapidocr_onnxruntime", reason="the OCR part needs the ocr extra (rapidocr-onnxruntime)")
    from retrieval.ingest.ocr import OcrConfig

    media = tmp_path / "media"
    _film(media / "ferry.mp4", film_photos)
    render_words("coffee", "RECEIPT 42.50", media / "receipt.jpg")
    with _open(tmp_path, tiny_model_dir) as lib:
        report = lib.index([media], ocr=True, ocr_config=OcrConfig(workers=1, det_side=480))
        assert (report.failed, report.videos, report.ocr_read, report.ocr_failed) == (0, 1, 1, 0)
        shutil.copy(media / "ferry.mp4", media / "ferry copy.mp4")
        shutil.copy(media / "receipt.jpg", media / "receipt copy.jpg")
        again = lib.index([media])  # OCR is remembered: the copies' bytes were read already
        assert (again.added, again.failed, again.ocr_read, again.ocr_failed) == (2, 0, 0, 0)
        assert lib.index([media]).ocr_failed == 0  # the indexed videos are not left "to read" either
        groups = lib.duplicates().groups
        assert [sorted(m.path for m in g.members) for g in groups] == [
            [str(media / "receipt copy.jpg"), str(media / "receipt.jpg")]
        ]
        assert lib.duplicates().images == 2
        assert {h.path for h in lib.search(text="receipt", mode="keyword")} == {
            str(media / "receipt copy.jpg"),
            str(media / "receipt.jpg"),
        }
        assert {h.path for h in lib.search(text="ferry", mode="keyword")} == {
            str(media / "ferry.mp4"),
            str(media / "ferry copy.mp4"),
        }


def _partial_run(library: Path, model: Path, media: Path, stop_after: int) -> int:
    """Index in a child process and SIGKILL it once ``stop_after`` moments are committed; returns how many were."""
    code = (
        "import sys\nfrom retrieval import Library, IngestConfig\n"
        f"with Library.open({str(library)!r}, model={f'local-dir:{model}'!r}, device='cpu') as lib:\n"
        f"    lib.index([{str(media)!r}], config=IngestConfig(batch_size=2))\n"
    )
    proc = subprocess.Popen([sys.executable, "-c", code], cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    database, committed, deadline = library / "catalog.sqlite", 0, time.monotonic() + 180
    while proc.poll() is None and time.monotonic() < deadline:
        if database.exists():
            try:
                with sqlite3.connect(database) as db:
                    committed = db.execute("SELECT count(*) FROM moments").fetchone()[0]
            except sqlite3.Error:  # created, not yet migrated
                pass
            if committed >= stop_after:
                break
        time.sleep(0.01)
    assert proc.poll() is None, f"the run ended before it could be killed: {proc.stderr.read().decode()[-2000:]}"  # type: ignore[union-attr]
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    return committed


@pytest.mark.parametrize("gop", [PHONE, EDITED])
def test_kill_9_in_a_long_video_loses_at_most_a_batch_and_resumes(
    tmp_path: Path, tiny_model_dir: Path, gop: str
) -> None:
    photos = scikit_photos(("astronaut", "coffee", "chelsea", "camera", "rocket", "coins", "cat", "colorwheel"))
    media = tmp_path / "media"
    _film(media / "long.mp4", photos, seconds=(4.0, 6.0, 3.0, 5.0, 7.0, 3.5, 4.5, 8.0) * 4, size=(64, 48), gop=gop)
    committed = _partial_run(tmp_path / "library", tiny_model_dir, media, stop_after=8)
    catalog = Catalog(sqlite_url(str(tmp_path / "library" / "catalog.sqlite")))
    row = catalog.image_by_path(str(media / "long.mp4"))
    done, kept = catalog.video(row.id).done, catalog.moments_of(row.id)  # type: ignore[union-attr]
    catalog.close()
    assert row.state == "partial" and 8 <= len(kept) and kept[-1].end == done  # type: ignore[union-attr]
    with Library.open(tmp_path / "library", device="cpu") as lib:
        assert lib.images.agrees_with_catalog()
        report = lib.index([media], config=IngestConfig(batch_size=2))
        assert (report.updated, report.failed) == (1, 0)
        resumed = _moments(lib, media / "long.mp4")
        assert resumed[: len(kept)] == [(m.id, m.start, m.end) for m in kept]  # what was committed stays
        assert report.moments == len(resumed) - len(kept)  # and only the rest was read
        assert lib.catalog.image_by_path(str(media / "long.mp4")).state == "indexed"  # type: ignore[union-attr]
        assert lib.images.agrees_with_catalog()
    with Library.open(tmp_path / "fresh", model=f"local-dir:{tiny_model_dir}", device="cpu") as fresh:
        fresh.index([media])
        whole = _moments(fresh, media / "long.mp4")
    assert [(s, e) for _, s, e in resumed] == [(s, e) for _, s, e in whole]  # as if it had never stopped
    assert committed <= len(kept)


def test_an_interrupted_video_that_moved_resumes_where_it_is_now(
    tmp_path: Path, tiny_model_dir: Path, film_photos: dict
) -> None:
    media = tmp_path / "media"
    _film(media / "a.mp4", film_photos, seconds=(3.0, 4.0, 5.0, 3.0, 4.0, 5.0))

    with _open(tmp_path, tiny_model_dir) as lib:

        def stop(progress: object) -> None:  # Ctrl-C once a first batch of moments is in
            if lib.catalog.counts()["moments"] >= 2:
                raise KeyboardInterrupt

        with pytest.raises(KeyboardInterrupt):
            lib.index([media], config=IngestConfig(batch_size=2), on_progress=stop)
        row = lib.catalog.image_by_path(str(media / "a.mp4"))
        kept = _moments(lib, media / "a.mp4")
        assert row.state == "partial" and 2 <= len(kept)  # type: ignore[union-attr]
        (media / "later").mkdir()
        shutil.move(media / "a.mp4", media / "later" / "a.mp4")
        report = lib.index([media])
        assert (report.moved, report.updated) == (1, 1)
        now = _moments(lib, media / "later" / "a.mp4")
        assert now[: len(kept)] == kept and lib.catalog.image_by_path(str(media / "later" / "a.mp4")).state == "indexed"  # type: ignore[union-attr]
        assert now[-1][2] == pytest.approx(24.0, abs=0.15) and lib.images.agrees_with_catalog()
        assert np.all(np.diff([s for _, s, _ in now]) > 0)


def test_a_damaged_moment_vector_is_left_out_then_its_video_read_again(
    tmp_path: Path, tiny_model_dir: Path, film_photos: dict
) -> None:
    from sqlalchemy import text

    media = tmp_path / "media"
    _film(media / "a.mp4", film_photos, gop=PHONE)
    _film(media / "b.mp4", film_photos, first=3)
    with _open(tmp_path, tiny_model_dir) as lib:
        first = lib.index([media])
        good = _moments(lib, media / "a.mp4")
        bad = good[1][0]
        with lib.catalog.engine.begin() as connection:
            connection.execute(
                text("UPDATE moments SET vector = :blob WHERE id = :id"), {"blob": b"\0" * 10, "id": bad}
            )
    (tmp_path / "library" / "images.vec").unlink()  # the next open rebuilds the index from the catalog
    with _open(tmp_path, tiny_model_dir) as lib:
        assert [r.path for r in lib.catalog.bad_vectors(lib.identity.embed_dim)] == [str(media / "a.mp4")]
        assert bad not in set(lib.catalog.vector_ids("images", lib.identity.embed_dim))  # left out
        assert lib.images.agrees_with_catalog()
        assert lib.search("a photo", k=50, per_video=False)
        again = lib.index([media])
        assert (again.updated, again.unchanged, again.failed) == (1, 1, 0)  # only the damaged video is read
        assert again.moments == len(good)
        assert lib.catalog.bad_vectors(lib.identity.embed_dim) == []
        assert [(start, end) for _, start, end in _moments(lib, media / "a.mp4")] == [(s, e) for _, s, e in good]
        assert lib.info().moments == first.moments and lib.images.agrees_with_catalog()
