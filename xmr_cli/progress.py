"""Progress bars on stderr for indexing, training and reranker training, fed by the library's callbacks."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import TYPE_CHECKING

from xmr_cli.output import err

if TYPE_CHECKING:
    from retrieval.ingest.commit import Progress
    from retrieval.ingest.ocr_pass import OcrProgress
    from retrieval.ingest.watch import Watcher
    from retrieval.training import dual, rerank_train

__all__ = ["IndexProgress", "RerankProgress", "TrainProgress", "watching_in_background", "working"]


@contextlib.contextmanager
def working(what: str) -> Iterator[None]:
    """A transient spinner on stderr while ``what`` runs (terminals only): a first search
    spends seconds loading the model, and a silent terminal looks hung."""
    if not err.is_terminal:
        yield
        return
    with err.status(what, spinner="dots"):
        yield


@contextlib.contextmanager
def watching_in_background(watcher: Watcher) -> Iterator[None]:
    """Run a :class:`~retrieval.ingest.watch.Watcher` on a thread for the block (``xmr serve --watch``);
    a watch that fails says why on stderr and the block goes on (the server keeps serving)."""
    import threading

    def run() -> None:
        try:
            watcher.run()
        except Exception as exc:  # noqa: BLE001 (reported; serving goes on without watching)
            err.print(f"[red]watching stopped:[/] {exc}", highlight=False)

    thread = threading.Thread(target=run, name="xmr-watcher", daemon=True)
    thread.start()
    try:
        yield
    finally:
        watcher.stop()
        thread.join(timeout=30)


class IndexProgress:
    """A rich progress bar with images/s, fed by the library's progress callback."""

    def __init__(self, enabled: bool) -> None:
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TextColumn,
            TimeRemainingColumn,
        )

        self.enabled = enabled
        self.bar = Progress(
            TextColumn("{task.fields[label]}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[rate]:.1f} img/s  {task.fields[failed]}"),
            TimeRemainingColumn(),
            console=err,
            disable=not enabled,
        )
        self.task = self.bar.add_task("index", total=None, label="indexing", rate=0.0, failed="0 failed")
        # A second bar for the OCR pass, shown once it reports: it runs beside the encoder.
        self.ocr_task = self.bar.add_task("ocr", total=None, label="reading text", rate=0.0, failed="", visible=False)

    def update_ocr(self, progress: OcrProgress) -> None:
        """The OCR pass's progress: files handled, and in how many text was found."""
        rate = progress.done / progress.seconds if progress.seconds > 0 else 0.0
        found = f"text in {progress.found}"
        self.bar.update(
            self.ocr_task, total=progress.total, completed=progress.done, rate=rate, failed=found, visible=True
        )

    def start(self, to_read: int, unchanged: int) -> None:
        self.bar.update(self.task, total=to_read, visible=to_read > 0)
        if self.enabled and unchanged:
            err.print(f"{unchanged} files unchanged, {to_read} to read")

    def update(self, progress: Progress) -> None:
        rate = progress.done / progress.seconds if progress.seconds > 0 else 0.0
        self.bar.update(self.task, completed=progress.done, rate=rate, failed=f"{progress.failed} failed")

    def __enter__(self) -> IndexProgress:
        self.bar.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.bar.stop()


class TrainProgress:
    """Steps, loss, pairs/s and temperature of a training run."""

    def __init__(self) -> None:
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TextColumn,
            TimeRemainingColumn,
        )

        self.bar = Progress(
            TextColumn("training"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("loss {task.fields[loss]:.3f}  {task.fields[rate]:.0f} pairs/s  T {task.fields[temp]:.3f}"),
            TimeRemainingColumn(),
            console=err,
        )
        self.task = self.bar.add_task("train", total=None, loss=0.0, rate=0.0, temp=0.0)

    def update(self, progress: dual.TrainProgress) -> None:
        p = progress
        self.bar.start()  # on the first step, so a run that fails to start draws no bar
        self.bar.update(
            self.task, completed=p.step, total=p.total, loss=p.loss, rate=p.pairs_per_second, temp=p.temperature
        )

    def __enter__(self) -> TrainProgress:
        return self

    def __exit__(self, *exc: object) -> None:
        self.bar.stop()


class RerankProgress:
    """Phase, loss and pairs/s of a reranker training run."""

    def __init__(self) -> None:
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TextColumn,
            TimeRemainingColumn,
        )

        self.bar = Progress(
            TextColumn("{task.fields[phase]}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("loss {task.fields[loss]:.3f}  {task.fields[rate]:.0f} pairs/s"),
            TimeRemainingColumn(),
            console=err,
        )
        self.task = self.bar.add_task("rerank", total=None, phase="", loss=0.0, rate=0.0)

    def update(self, p: rerank_train.RerankProgress) -> None:
        self.bar.start()
        self.bar.update(self.task, completed=p.done, total=p.total, phase=p.phase, loss=p.loss, rate=p.pairs_per_second)

    def __enter__(self) -> RerankProgress:
        return self

    def __exit__(self, *exc: object) -> None:
        self.bar.stop()
