"""FIFOs, devices and links to them: never read (nothing hangs), always reported (issue 23, items 4 and 11)."""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from pathlib import Path

import pytest

from index.lock import WriteLock

pytestmark = pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="needs named pipes")

_PATIENCE = 120.0  # seconds: a decode of six photos with the tiny model takes a few on a busy machine


def _without_hanging(call: Callable[[], object], fifo: Path) -> object:
    """``call()`` in a thread; fails the test if it is still blocked after ``_PATIENCE`` seconds.

    A reader stuck opening ``fifo`` is released (by opening the write end) so the test ends.
    """
    box: dict[str, object] = {}

    def run() -> None:
        try:
            box["value"] = call()
        except BaseException as exc:  # handed to the test below
            box["error"] = exc

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    thread.join(_PATIENCE)
    if thread.is_alive():
        try:
            os.close(os.open(fifo, os.O_WRONLY | os.O_NONBLOCK))  # the blocked open() returns, then reads EOF
        except OSError:
            pass
        thread.join(30)
        pytest.fail(f"still blocked on the FIFO {fifo} after {_PATIENCE:.0f} s")
    if "error" in box:
        raise box["error"]  # type: ignore[misc]
    return box["value"]


def test_a_file_replaced_by_a_fifo_after_the_scan_fails_alone_and_frees_the_lock(open_library, photos: Path) -> None:  # noqa: ANN001
    lib = open_library()
    victim = next(photos.rglob("coffee.*"))

    def swap(to_read: int, unchanged: int) -> None:  # after the scan and the plan, before any read
        victim.unlink()
        os.mkfifo(victim)

    report = _without_hanging(lambda: lib.index([photos], on_plan=swap), victim)
    assert (report.added, report.failed) == (5, 1)  # type: ignore[attr-defined]
    assert "FIFO (named pipe), not a regular file" in dict(report.failures)[str(victim)]  # type: ignore[attr-defined]
    lock = WriteLock(lib.layout.lock)
    assert lock.acquire() is True  # the run ended and let go of the library
    lock.release()


def test_a_fifo_as_a_query_image_is_refused_at_once(open_library, photos: Path, tmp_path: Path) -> None:  # noqa: ANN001
    from retrieval import QueryError

    lib = open_library()
    lib.index([photos])
    fifo = tmp_path / "query.jpg"
    os.mkfifo(fifo)
    with pytest.raises(QueryError, match=r"FIFO \(named pipe\), not a regular file"):
        _without_hanging(lambda: lib.search(image=fifo, k=1), fifo)


def test_the_scan_reports_fifos_and_links_to_devices_and_to_nothing(open_library, photos: Path) -> None:  # noqa: ANN001
    lib = open_library()
    os.mkfifo(photos / "pipe.jpg")
    (photos / "zero.jpg").symlink_to("/dev/zero")
    (photos / "gone.jpg").symlink_to(photos / "missing.jpg")
    os.mkfifo(photos / "pipe.txt")  # not an image name: ignored like any other file

    report = _without_hanging(lambda: lib.index([photos]), photos / "pipe.jpg")
    reasons = dict(report.failures)  # type: ignore[attr-defined]
    assert report.added == 6  # type: ignore[attr-defined]
    assert reasons[str(photos / "pipe.jpg")] == "a FIFO (named pipe), not a regular file: skipped"
    assert reasons[str(photos / "zero.jpg")] == (
        "a symbolic link to a character device (/dev/zero), not a regular file: skipped"
    )
    assert reasons[str(photos / "gone.jpg")] == "a symbolic link to nothing (its target is missing)"
    assert str(photos / "pipe.txt") not in reasons


def test_an_indexed_photo_replaced_by_a_fifo_leaves_the_library_with_a_reason(open_library, photos: Path) -> None:  # noqa: ANN001
    lib = open_library()
    lib.index([photos])
    victim = next(photos.rglob("camera.*"))
    victim.unlink()
    os.mkfifo(victim)
    report = _without_hanging(lambda: lib.index([photos]), victim)
    assert report.removed == 1 and lib.catalog.image_by_path(str(victim)) is None  # type: ignore[attr-defined]
    assert "FIFO" in dict(report.failures)[str(victim)]  # type: ignore[attr-defined]
