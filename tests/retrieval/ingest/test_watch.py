"""The watcher: events become committed batches through Library.index; settling, busy locks,
restarts, Ctrl-C and kill -9."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from index.lock import WriteLock
from retrieval.ingest.watch import WatchConfig, Watcher, batch_roots

pytest.importorskip("watchfiles", reason="the watcher needs the watch extra: pip install -e '.[watch]'")


def _until(check, timeout: float = 30.0) -> bool:  # noqa: ANN001
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(0.05)
    return check()


class _Running:
    """A watcher on a thread, stopped and joined at exit; its reports kept."""

    def __init__(self, lib, paths, **config: object) -> None:  # noqa: ANN001
        self.reports: list = []
        config.setdefault("settle_seconds", 0.3)
        self.watcher = Watcher(lib, paths, WatchConfig(**config), on_batch=lambda r, p: self.reports.append((r, p)))
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        try:
            self.watcher.run()
        except BaseException as exc:  # noqa: BLE001
            self.error = exc

    def __enter__(self) -> _Running:
        self.thread.start()
        assert _until(lambda: bool(self.reports), 60)  # the catch-up run committed
        assert self.watcher.wait_ready(10)
        return self

    def __exit__(self, *exc: object) -> None:
        self.watcher.stop()
        self.thread.join(30)
        assert not self.thread.is_alive() and self.error is None, self.error


def test_batch_roots_name_each_thing_once() -> None:
    many = [f"/p/big/{i}.jpg" for i in range(40)]
    roots = batch_roots(["/p/a.jpg", "/p/sub/b.jpg", "/p/sub/.xmrignore", "/p/c.jpg.txt", *many, "/p/big/x/y.jpg"])
    assert roots == ["/p"]  # the caption beside /p/c.jpg stands for /p, which holds the rest
    assert batch_roots(["/p/sub/b.jpg", "/p/sub/.xmrignore", "/q/z.png"]) == ["/p/sub", "/q/z.png"]
    assert batch_roots(many) == ["/p/big"] and batch_roots(many[:3]) == sorted(many[:3])


def test_new_moved_deleted_and_ignored_files_follow_the_folder(open_library, photos: Path, photo_source: Path) -> None:  # noqa: ANN001
    lib = open_library()
    with _Running(lib, [photos]) as running:
        assert running.reports[0][0].added == 6  # caught up
        new = photos / "new" / "rocket-copy.jpg"
        new.parent.mkdir()
        shutil.copy(photo_source / "rocket.jpg", new)
        assert _until(lambda: lib.catalog.image_by_path(str(new)) is not None)
        assert lib.search(image=new, k=1)[0].path in {str(new), str(next(photos.rglob("rocket.jpg")))}
        row = lib.catalog.image_by_path(str(new))

        moved = photos / "moved.jpg"
        os.rename(new, moved)
        assert _until(lambda: lib.catalog.image_by_path(str(moved)) is not None)
        assert lib.catalog.image_by_path(str(moved)).id == row.id  # a move keeps its row and vector
        assert lib.catalog.image_by_path(str(new)) is None

        coffee = next(photos.rglob("coffee.*"))
        coffee.unlink()
        assert _until(lambda: lib.catalog.image_by_path(str(coffee)) is None)

        (photos / ".xmrignore").write_text("moved.jpg\n")
        assert _until(lambda: lib.catalog.image_by_path(str(moved)) is None)
    assert running.watcher.batches >= 4 and all(r.failed == 0 for r, _ in running.reports)


def test_a_file_still_being_written_is_read_once_whole(open_library, photos: Path, photo_source: Path) -> None:  # noqa: ANN001
    lib = open_library()
    data = (photo_source / "coffee.png").read_bytes()
    target = photos / "slow.png"
    with _Running(lib, [photos], settle_seconds=0.8) as running:
        with open(target, "wb") as handle:
            for start in range(0, len(data), len(data) // 6 + 1):
                handle.write(data[start : start + len(data) // 6 + 1])
                handle.flush()
                time.sleep(0.3)  # pauses shorter than the settle time
        assert _until(lambda: lib.catalog.image_by_path(str(target)) is not None)
        time.sleep(1.0)
    record = lib.catalog.image_by_path(str(target))
    assert record.state == "indexed" and record.size == len(data)
    assert not any(str(target) in [p for p, _ in r.failures] for r, _ in running.reports)


def test_a_busy_library_makes_the_batch_wait_not_fail(open_library, photos: Path, photo_source: Path) -> None:  # noqa: ANN001
    lib = open_library()
    with _Running(lib, [photos], busy_retry_seconds=0.2) as running:
        lock = WriteLock(lib.layout.lock)  # as another process's index run would hold it
        assert lock.acquire()
        try:
            target = photos / "late.jpg"
            shutil.copy(photo_source / "astronaut.jpg", target)
            time.sleep(1.5)
            assert lib.catalog.image_by_path(str(target)) is None  # waiting, not failed
        finally:
            lock.release()
        assert _until(lambda: lib.catalog.image_by_path(str(target)) is not None)
        assert running.error is None


def test_a_restart_catches_up(open_library, photos: Path, photo_source: Path) -> None:  # noqa: ANN001
    lib = open_library()
    with _Running(lib, [photos]):
        pass
    shutil.copy(photo_source / "coins.png", photos / "while-away.png")
    next(photos.rglob("camera.*")).unlink()
    with _Running(lib, [photos]) as running:
        caught = running.reports[0][0]
    assert (caught.added, caught.removed) == (1, 1)


def _watch_process(library: Path, photos: Path, model: Path) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[3]), "HF_HUB_OFFLINE": "1"}
    args = [sys.executable, "-m", "cli", "watch", str(photos), "--library", str(library)]
    args += ["--model", f"local-dir:{model}", "--settle", "0.3", "--json"]
    return subprocess.Popen(args, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


@pytest.mark.parametrize("how", ["SIGINT", "SIGKILL"])
def test_interrupt_and_kill_lose_nothing_committed(
    tmp_path: Path, photos: Path, photo_source: Path, tiny_model_dir: Path, how: str
) -> None:
    from retrieval import Library

    library = tmp_path / "library"
    process = _watch_process(library, photos, tiny_model_dir)
    try:
        assert _until(lambda: (library / "catalog.sqlite").exists(), 60)
        first = process.stdout.readline()  # the catch-up report
        assert '"added": 6' in first, first + process.stderr.read() if process.poll() is not None else first
        shutil.copy(photo_source / "rocket.jpg", photos / "during.jpg")
        line = process.stdout.readline()
        assert '"added": 1' in line
        process.send_signal(signal.SIGINT if how == "SIGINT" else signal.SIGKILL)
        code = process.wait(30)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert code == (130 if how == "SIGINT" else -signal.SIGKILL)
    with Library.open(library) as lib:
        assert lib.catalog.counts()["images"] == 7 and lib.images.agrees_with_catalog()
        assert lib.search(image=photos / "during.jpg", k=1)[0].score == pytest.approx(1.0, abs=1e-4)
