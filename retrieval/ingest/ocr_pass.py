"""The OCR pass of an index run: read the text in photos beside the encoder.

Worker threads (each with its own :class:`~retrieval.ocr.OcrEngine`) read, hash and
decode each file and run OCR on it; a coordinator thread commits the results in batches
(one catalog transaction each, keyed by content hash). It runs while the encoder works
on the same run's files, neither waiting for the other, and the run waits for it at the
end. Bytes already read (a copy, a move, an earlier run) are skipped after hashing; an
unreadable image is recorded with its reason and never stops the run.
"""

from __future__ import annotations

import hashlib
import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from index.records import INDEXED, OcrRecord
from index.schema_names import IMAGE
from retrieval.images.decode import DecodeConfig, ImageDecodeError, decode_bytes
from retrieval.ingest.ocr import OcrConfig, engine_name, thread_engine
from retrieval.ingest.scan import Plan, ScanResult

if TYPE_CHECKING:
    from index.catalog import Catalog

__all__ = ["OcrPass", "OcrProgress", "OcrTally", "start_ocr_pass"]

log = logging.getLogger(__name__)
_COMMIT_EVERY = 16  # results per catalog transaction
_COMMIT_SECONDS = 2.0  # or sooner, once results have waited this long


@dataclass(frozen=True)
class OcrProgress:
    """Where the OCR pass stands; handed to its progress callback after every commit."""

    done: int  # files handled (read, skipped as already read, or failed)
    total: int  # files it was given
    found: int  # of ``done``, images in which text was found
    seconds: float  # since it started


@dataclass
class OcrTally:
    """What the OCR pass did."""

    read: int = 0  # images whose text was read this run
    skipped: int = 0  # bytes read before (copies, moves, earlier runs)
    failed: list[tuple[str, str]] = field(default_factory=list)  # (path, why)


@dataclass(frozen=True)
class _Outcome:
    path: str
    record: OcrRecord | None = None  # None: skipped, or the file could not be read at all
    error: str = ""  # why, for the report


class OcrPass:
    """Reads the text of ``paths`` in the background; :meth:`finish` waits and reports."""

    def __init__(
        self,
        catalog: Catalog,
        paths: Sequence[str],
        config: OcrConfig = OcrConfig(),
        retry_failed: bool = False,
        on_progress: Callable[[OcrProgress], None] | None = None,
    ) -> None:
        self.catalog = catalog
        self.paths = list(dict.fromkeys(paths))
        self.config = config
        self.on_progress = on_progress
        self.tally = OcrTally()
        self._decode = DecodeConfig(draft_side=max(1, config.max_side // 2))
        self._retry_failed = retry_failed
        self._seen: set[str] = set()  # hashes handled this run
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="xmr-ocr", daemon=True)

    def start(self) -> OcrPass:
        """Load one engine here (a missing extra fails now, not in a thread), then start."""
        thread_engine(self.config)
        self._thread.start()
        return self

    def cancel(self) -> None:
        """Stop taking new files; what was read and committed stays."""
        self._stop.set()

    def finish(self) -> OcrTally:
        """Wait for the pass to end and return its tally.

        Raises:
            CorruptFileError: a commit failed (the exception of the coordinator thread).
        """
        self._thread.join()
        if self._error is not None:
            raise self._error
        return self.tally

    def join(self) -> None:
        """Wait for the pass to end, keeping any error to itself (the run is failing already)."""
        if self._thread.ident is not None:
            self._thread.join()

    # ---- the coordinator ------------------------------------------------------------------

    def _run(self) -> None:
        start = time.perf_counter()
        done = found = 0
        batch: list[_Outcome] = []
        last_commit = time.perf_counter()
        window = 4 * self.config.worker_count()
        try:
            with ThreadPoolExecutor(self.config.worker_count(), thread_name_prefix="xmr-ocr-read") as pool:
                pending: deque[Future[_Outcome]] = deque()
                todo = iter(self.paths)
                while True:
                    while not self._stop.is_set() and len(pending) < window:
                        path = next(todo, None)
                        if path is None:
                            break
                        pending.append(pool.submit(self._read, path))
                    if not pending:
                        break
                    outcome = pending.popleft().result()
                    batch.append(outcome)
                    if (
                        len(batch) >= _COMMIT_EVERY
                        or time.perf_counter() - last_commit > _COMMIT_SECONDS
                        or not pending
                    ):
                        found += self._commit(batch)
                        done += len(batch)
                        batch, last_commit = [], time.perf_counter()
                        if self.on_progress:
                            self.on_progress(OcrProgress(done, len(self.paths), found, time.perf_counter() - start))
                for future in pending:
                    future.cancel()
        except BaseException as exc:  # handed to finish(); the index run reports it
            self._error = exc

    def _commit(self, batch: list[_Outcome]) -> int:
        records = {o.record.content_hash: o.record for o in batch if o.record is not None}
        if records:
            self.catalog.apply_ocr(list(records.values()))
        for outcome in batch:
            if outcome.error:
                self.tally.failed.append((outcome.path, outcome.error))
            elif outcome.record is None:
                self.tally.skipped += 1
            else:
                self.tally.read += 1
        return sum(bool(r.lines) for r in records.values())

    # ---- a worker -------------------------------------------------------------------------

    def _claim(self, content_hash: str) -> bool:
        """Whether this worker should read these bytes (not read before, not taken this run)."""
        with self._lock:
            if content_hash in self._seen:
                return False
            self._seen.add(content_hash)
        if self._retry_failed:
            return content_hash not in self.catalog.ocr_read([content_hash], with_errors=False)
        return content_hash not in self.catalog.ocr_read([content_hash], with_errors=True)

    def _read(self, path: str) -> _Outcome:
        try:
            data = Path(path).read_bytes()
        except OSError as exc:
            return _Outcome(path, error=f"reading text: cannot read file: {exc.strerror or exc}")
        content_hash = hashlib.blake2b(data, digest_size=16).hexdigest()
        if not self._claim(content_hash):
            return _Outcome(path)
        try:
            image = np.asarray(decode_bytes(data, self._decode).image)  # (H, W, 3) RGB
            lines = thread_engine(self.config).read(image)
        except ImageDecodeError as exc:
            return _Outcome(path, OcrRecord(content_hash, engine_name(), error=str(exc)), f"reading text: {exc}")
        except Exception as exc:  # one image OCR cannot read must never stop the run
            log.warning("OCR failed on %s: %s", path, exc)
            reason = f"{exc.__class__.__name__}: {exc}"
            return _Outcome(
                path, OcrRecord(content_hash, engine_name(), error=reason[:2000]), f"reading text: {reason}"
            )
        return _Outcome(
            path,
            OcrRecord(content_hash, engine_name(), tuple((line.text, line.confidence, line.box) for line in lines)),
        )


def start_ocr_pass(
    catalog: Catalog,
    found: ScanResult,
    plan: Plan,
    ocr: bool | None,
    config: OcrConfig | None = None,
    retry_failed: bool = False,
    on_progress: Callable[[OcrProgress], None] | None = None,
) -> OcrPass | None:
    """The started OCR pass of an index run, or None when the library does not read text.

    ``ocr`` True or False is remembered in the catalog (True once the engine has loaded);
    None follows what was remembered (off by default). The pass reads the run's new and
    changed files, then the indexed photos under the scanned roots whose bytes were not
    read yet (``retry_failed``: also those that failed before). Videos are not read:
    ``plan`` must have them taken out already (:func:`retrieval.ingest.videos.split_videos`).

    Raises:
        MissingDependencyError: the ``[ocr]`` extra is not installed.
    """
    if ocr is None:
        ocr = catalog.setting("ocr") == "on"
    elif not ocr:
        catalog.set_setting("ocr", "off")
    if not ocr:
        return None
    paths = [stat.path for stat in plan.todo]
    fresh = set(paths)
    rows = catalog.files_under(found.roots)
    known = {
        p: r.content_hash
        for p, r in rows.items()
        if p in found.files and p not in fresh and r.state == INDEXED and r.kind == IMAGE  # photos only: no video
    }
    done = catalog.ocr_read(known.values(), with_errors=not retry_failed)
    paths += sorted(p for p, content_hash in known.items() if content_hash not in done)
    reader = OcrPass(catalog, paths, config or OcrConfig(), retry_failed, on_progress).start()
    catalog.set_setting("ocr", "on")
    return reader
