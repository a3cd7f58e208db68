"""Keep a library up to date while folders change: ``xmr watch`` and ``xmr serve --watch``.

A thread listens for filesystem events (``watchfiles``: inotify, FSEvents or
ReadDirectoryChangesW through Rust's ``notify``; polling with ``poll=True`` for network
mounts that deliver no events). The main loop collects the changed paths and, once a path
has had no event for ``settle_seconds`` and its size and modification time held still over
that time, hands the settled paths as one batch to :meth:`Library.index` (the same plan,
decode, embed and per-batch commit as ``xmr index``). A file still being written keeps
changing, so it waits; one whose writer paused longer than that is read, fails as truncated
or is read as it was, and is read again when the writer's next write changes it.

The write lock is held only while a batch commits, so ``xmr search`` in other processes
never waits, and ``xmr index`` run meanwhile either gets in between batches or is told the
library is busy; a batch that finds the lock taken waits and tries again. On start a full
index run of the watched folders catches up with what changed while nothing watched; a
Ctrl-C or ``kill -9`` loses nothing committed (the catalog is written batch by batch) and
the next start's catch-up finds what was pending. The index snapshot (a full rewrite of the
index file) is written every ``persist_seconds`` and on stop rather than after every small
batch; searches read the catalog's newer changes on top of it, and after a ``kill -9`` the
next open does. Idle, the loop sleeps in a blocking wait: no polling, no CPU.
"""

from __future__ import annotations

import logging
import os
import queue
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from index.deps import attempt_import
from index.errors import LibraryBusyError
from retrieval.images.decode import image_extensions
from retrieval.ingest.config import IngestConfig
from retrieval.ingest.exclusions import IGNORE_FILE, ExclusionRules
from retrieval.results import IndexReport
from retrieval.video.formats import VIDEO_EXTENSIONS

if TYPE_CHECKING:
    from retrieval.library import Library

__all__ = ["WATCH_HINT", "WatchConfig", "Watcher", "batch_roots"]

log = logging.getLogger(__name__)
WATCH_HINT = "xmr watch needs watchfiles: pip install 'xmr[watch]'"
_FOLDER_BATCH = 32  # changed entries of one folder above which the folder is walked instead


@dataclass(frozen=True)
class WatchConfig:
    """How a watcher batches filesystem events."""

    settle_seconds: float = 1.0  # a path is read once it had no event and kept its size and mtime this long
    busy_retry_seconds: float = 2.0  # wait before retrying a batch when another process holds the write lock
    catch_up: bool = True  # index the watched folders fully on start (what changed while nothing watched)
    poll: bool = False  # poll the folders instead of kernel events (network mounts; costs CPU while idle)
    poll_ms: int = 2000  # polling period with ``poll``
    follow_symlinks: bool = True  # as ``xmr index`` (a link to a folder is watched through its own events)
    persist_seconds: float = (
        300.0  # write the index snapshot at most this often (and on stop); the catalog has every batch
    )
    ingest: IngestConfig = field(default_factory=IngestConfig)  # how batches are read and embedded


@dataclass
class _Pending:
    last_event: float  # monotonic time of the path's last event
    signature: tuple[int, int] | None  # (size, mtime_ns) then; None: gone or a folder


class Watcher:
    """Watch ``paths`` and index what changes into ``library`` until :meth:`stop`.

    ``on_batch(report, paths)`` is called after each committed batch (and after the catch-up
    run, with ``paths`` empty); it runs on the thread that called :meth:`run`.
    """

    def __init__(
        self,
        library: Library,
        paths: Sequence[str | Path],
        config: WatchConfig = WatchConfig(),
        on_batch: Callable[[IndexReport, tuple[str, ...]], None] | None = None,
    ) -> None:
        self.library = library
        self.roots = tuple(os.path.abspath(os.path.expanduser(str(p))) for p in paths)
        self.config = config
        self.on_batch = on_batch
        self._stop = threading.Event()
        self._events: queue.Queue[set[tuple[object, str]] | BaseException] = queue.Queue()
        self._pending: dict[str, _Pending] = {}
        self._ready = threading.Event()  # set once the event thread is listening
        self.batches = 0  # batches committed since start (the catch-up run not counted)
        self._saved = time.monotonic()  # when the index snapshot was last written
        self._unsaved = False  # batches committed since

    def stop(self) -> None:
        """Ask :meth:`run` to return (from another thread or a signal handler)."""
        self._stop.set()
        self._events.put(set())  # wake the loop

    def wait_ready(self, timeout: float | None = None) -> bool:
        """Block until events are being listened for (tests and benchmarks write files after this)."""
        return self._ready.wait(timeout)

    def run(self) -> None:
        """Catch up, then index changes batch by batch until :meth:`stop` (or Ctrl-C).

        Raises:
            MissingDependencyError: watchfiles is not installed.
            XmrError: a batch failed for a reason other than a busy library (the batches
                committed before it stay).
        """
        watchfiles = attempt_import("watchfiles", WATCH_HINT)
        listener = threading.Thread(target=self._listen, args=(watchfiles,), name="xmr-watch", daemon=True)
        listener.start()
        try:
            if self.config.catch_up:
                self._index(self.roots, vanished=False)  # events meanwhile queue up and are read next
            while not self._stop.is_set():
                self._take(self._wait_time())
                ready = self._settled()
                if ready:
                    self._commit(ready)
                if self._unsaved and time.monotonic() - self._saved >= self.config.persist_seconds:
                    self._persist()
        finally:
            self._stop.set()
            listener.join(timeout=10)
            if self._unsaved:
                self._persist()  # also after Ctrl-C; after kill -9 the next open catches up from the catalog

    # ---- events ---------------------------------------------------------------------

    def _listen(self, watchfiles) -> None:  # noqa: ANN001 (module)
        """The event thread: batches of (change, path) from watchfiles onto the queue."""
        try:
            stream = watchfiles.watch(
                *self.roots,
                watch_filter=None,  # filtered in _take, with the library's own rules
                debounce=1600,
                step=50,
                stop_event=self._stop,
                rust_timeout=1000,  # how soon a stop is noticed; the wait blocks in the kernel
                yield_on_timeout=True,
                raise_interrupt=False,
                force_polling=self.config.poll or None,
                poll_delay_ms=self.config.poll_ms,
                recursive=True,
                ignore_permission_denied=True,
            )
            for changes in stream:
                self._ready.set()  # the first yield (a timeout at the latest) means the watch is armed
                if changes:
                    self._events.put(changes)
        except BaseException as exc:  # noqa: BLE001 (handed to the main loop, which raises it)
            self._events.put(exc)
        finally:
            self._ready.set()

    def _wait_time(self) -> float | None:
        """How long the loop may block: until the next pending path could settle or the snapshot
        is due, else until the next event."""
        due = [p.last_event + self.config.settle_seconds for p in self._pending.values()]
        if self._unsaved:
            due.append(self._saved + self.config.persist_seconds)
        return max(0.0, min(due) - time.monotonic()) if due else None

    def _persist(self) -> None:
        try:
            self.library.persist_index()
        except LibraryBusyError:  # another process is writing: it saves the snapshot itself
            pass
        self._saved, self._unsaved = time.monotonic(), False

    def _take(self, timeout: float | None) -> None:
        """Move the queued events into ``_pending`` (blocking up to ``timeout`` for the first)."""
        try:
            item = self._events.get(timeout=timeout)
        except queue.Empty:
            return
        rules = ExclusionRules(self.library.exclusions())  # read now: an edit applies to the next events
        while True:
            if isinstance(item, BaseException):
                raise item
            now = time.monotonic()
            for _change, path in item:
                if self._wanted(path, rules):
                    self._pending[path] = _Pending(now, _signature(path))
            try:
                item = self._events.get_nowait()
            except queue.Empty:
                return

    def _wanted(self, path: str, rules: ExclusionRules) -> bool:
        """Whether an event's path can matter: an image, a video, a caption, an ignore file, a folder, or gone."""
        name = os.path.basename(path)
        if name == IGNORE_FILE:
            return True
        if name.startswith(".") or rules.covers(path, self._root_of(path)):
            return False
        suffix = os.path.splitext(name)[1].lower()
        return (
            suffix in image_extensions()
            or suffix in VIDEO_EXTENSIONS
            or suffix == ".txt"
            or os.path.isdir(path)
            or not os.path.exists(path)
        )

    def _root_of(self, path: str) -> str:
        return max((r for r in self.roots if path == r or path.startswith(r.rstrip("/") + "/")), key=len, default="/")

    def _settled(self) -> list[str]:
        """Pending paths quiet for ``settle_seconds`` whose size and mtime held still; the rest wait."""
        now = time.monotonic()
        ready = []
        for path, pending in list(self._pending.items()):
            if now - pending.last_event < self.config.settle_seconds:
                continue
            current = _signature(path)
            if current != pending.signature:  # still being written: wait another period
                self._pending[path] = _Pending(now, current)
                continue
            ready.append(path)
            del self._pending[path]
        return ready

    # ---- batches --------------------------------------------------------------------

    def _commit(self, paths: list[str]) -> None:
        """Index one batch; while another process holds the write lock, wait and try again."""
        roots = batch_roots(paths)
        while not self._stop.is_set():
            try:
                self._index(roots, vanished=True)
                self.batches += 1
                return
            except LibraryBusyError:
                log.info("library busy; batch of %d paths waits %.1f s", len(roots), self.config.busy_retry_seconds)
                self._stop.wait(self.config.busy_retry_seconds)
        for path in paths:  # stopped while waiting: the next start's catch-up reads them
            self._pending.setdefault(path, _Pending(time.monotonic(), None))

    def _index(self, roots: Sequence[str], vanished: bool) -> None:
        report = self.library.index(
            list(roots),
            config=self.config.ingest,
            follow_symlinks=self.config.follow_symlinks,
            vanished_means_deleted=vanished,
            persist=not vanished,  # batches: the snapshot is written every persist_seconds and on stop
        )
        self._unsaved = self._unsaved or vanished
        if self.on_batch is not None:
            self.on_batch(report, tuple(roots) if vanished else ())


def batch_roots(paths: Sequence[str]) -> list[str]:
    """The paths to index for a batch of changed ``paths``: an ignore file or caption stands for
    its folder, a folder with many changed entries is walked whole, and nothing is named twice."""
    wanted: set[str] = set()
    by_folder: dict[str, list[str]] = {}
    for path in paths:
        name = os.path.basename(path)
        if name == IGNORE_FILE or name.lower().endswith(".txt"):
            wanted.add(os.path.dirname(path))  # what it names (or captions) lies beside it
        else:
            by_folder.setdefault(os.path.dirname(path), []).append(path)
    for folder, entries in by_folder.items():
        wanted.update([folder] if len(entries) > _FOLDER_BATCH else entries)
    out: list[str] = []
    for path in sorted(wanted, key=len):  # a folder comes before what lies under it
        if not any(path.startswith(kept.rstrip("/") + "/") for kept in out):
            out.append(path)
    return sorted(out)


def _signature(path: str) -> tuple[int, int] | None:
    try:
        info = os.stat(path)
    except OSError:
        return None
    return (info.st_size, info.st_mtime_ns) if not os.path.isdir(path) else None
