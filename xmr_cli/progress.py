"""Progress on stderr for indexing, adding texts, evaluating and training, fed by the library's callbacks.

On a terminal a rich bar names the stage that is running ("loading the model", "scanning",
"embedding") and, once a rate is known, the time left. Into a pipe or a log file a bar
draws nothing until it ends, so there each stage is a line and progress is a line at
most every :data:`LINE_SECONDS` (a run piped to a log says what it does).
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator
from typing import TYPE_CHECKING

from xmr_cli.output import err

if TYPE_CHECKING:
    from rich.progress import Progress as RichProgress
    from rich.progress import ProgressColumn

    from retrieval.ingest.commit import Progress
    from retrieval.ingest.ocr_pass import OcrProgress
    from retrieval.ingest.watch import Watcher
    from retrieval.training import dual, rerank_train

__all__ = [
    "LINE_SECONDS",
    "CountProgress",
    "IndexProgress",
    "Lines",
    "RerankProgress",
    "TrainProgress",
    "time_left",
    "watching_in_background",
    "working",
]

LINE_SECONDS = 30.0  # least time between two progress lines when stderr is not a terminal


@contextlib.contextmanager
def working(what: str) -> Iterator[None]:
    """A transient spinner on stderr while ``what`` runs (terminals only): a first search
    spends seconds loading the model, and a silent terminal looks hung."""
    if not err.is_terminal:
        yield
        return
    with err.status(what, spinner="dots"):
        yield


def time_left(done: int, total: int, seconds: float) -> str:
    """``H:MM:SS`` left at the rate so far, or "" while no rate is known."""
    if done <= 0 or seconds <= 0 or total <= done:
        return ""
    left = int(round((total - done) * seconds / done))
    return f"{left // 3600}:{left // 60 % 60:02d}:{left % 60:02d}"


class Lines:
    """Progress as plain lines (stderr is not a terminal): stages at once, counts now and then."""

    clock = staticmethod(time.monotonic)

    def __init__(self, every: float = LINE_SECONDS) -> None:
        self.every = every
        self.last = float("-inf")

    def say(self, text: str) -> None:
        err.print(text, highlight=False, soft_wrap=True)

    def tick(self, text: str, final: bool = False) -> None:
        now = self.clock()
        if final or now - self.last >= self.every:
            self.last = now
            self.say(text)


def _bar(*columns: ProgressColumn, enabled: bool = True) -> RichProgress:
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, SpinnerColumn, TextColumn

    return Progress(
        SpinnerColumn(),
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        *columns,
        console=err,
        disable=not enabled,
        transient=False,
    )


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
    """The stages of an index run, then images done, images/s, failures and time left."""

    def __init__(self, enabled: bool) -> None:
        from rich.progress import TextColumn

        self.enabled = enabled
        self.lines = None if err.is_terminal else Lines()
        self.bar = _bar(
            TextColumn("{task.fields[rate]}  {task.fields[note]}  {task.fields[left]}"),
            enabled=enabled and self.lines is None,
        )
        self.task = self.bar.add_task("starting", total=None, rate="", note="0 failed", left="")
        # A second bar for the OCR pass, shown once it reports: it runs beside the encoder.
        self.ocr_task = self.bar.add_task("reading text", total=None, rate="", note="", left="", visible=False)
        self.total = 0

    def update_ocr(self, progress: OcrProgress) -> None:
        """The OCR pass's progress: files handled, and in how many text was found."""
        done, seconds = progress.done, progress.seconds
        rate = f"{done / seconds:.1f} img/s" if seconds > 0 and done else ""
        left = time_left(done, progress.total, seconds)
        note = f"text in {progress.found}"
        self.bar.update(
            self.ocr_task,
            total=progress.total,
            completed=done,
            rate=rate,
            note=note,
            left=f"{left} left" * bool(left),
            visible=True,
        )
        if self.enabled and self.lines is not None:
            self.lines.tick(f"reading text: {done}/{progress.total} images, {note}", final=done >= progress.total)

    def stage(self, name: str) -> None:
        """A stage started (``Library.index``'s ``on_stage``)."""
        if not self.enabled:
            return
        if self.lines is not None:
            self.lines.say(f"{name}…")
        self.bar.update(self.task, description=name)

    def start(self, to_read: int, unchanged: int) -> None:
        """The plan is made (``on_plan``)."""
        self.total = to_read
        self.bar.update(self.task, total=to_read or None)
        if self.enabled and unchanged:
            err.print(f"{unchanged} files unchanged, {to_read} to read")

    def update(self, progress: Progress) -> None:
        """A batch was committed (``on_progress`` with a :class:`retrieval.Progress`)."""
        done, total, seconds = progress.done, progress.total, progress.seconds
        rate = f"{done / seconds:.1f} img/s" if seconds > 0 and done else ""
        left = time_left(done, total, seconds)
        failed = progress.failed
        self.bar.update(
            self.task, completed=done, total=total, rate=rate, note=f"{failed} failed", left=f"{left} left" * bool(left)
        )
        if self.enabled and self.lines is not None:
            text = f"embedding: {done}/{total} images, {rate or 'starting'}, {failed} failed"
            self.lines.tick(text + (f", about {left} left" if left else ""), final=done >= total)

    def __enter__(self) -> IndexProgress:
        self.bar.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.bar.stop()


class CountProgress:
    """Stages, then ``done`` of ``total`` things (texts, images) with the time left."""

    def __init__(self, unit: str, enabled: bool = True) -> None:
        from rich.progress import TextColumn

        self.unit = unit
        self.enabled = enabled
        self.lines = None if err.is_terminal else Lines()
        self.bar = _bar(TextColumn("{task.fields[left]}"), enabled=enabled and self.lines is None)
        self.task = self.bar.add_task("starting", total=None, left="")
        self.name = "starting"
        self.began = time.monotonic()

    def stage(self, name: str) -> None:
        if not self.enabled:
            return
        self.name, self.began = name, time.monotonic()
        if self.lines is not None:
            self.lines.say(f"{name}…")
        self.bar.update(self.task, description=name, completed=0, total=None, left="")

    def update(self, done: int, total: int) -> None:
        left = time_left(done, total, time.monotonic() - self.began)
        self.bar.update(self.task, completed=done, total=total, left=f"{left} left" * bool(left))
        if self.enabled and self.lines is not None:
            self.lines.tick(f"{self.name}: {done}/{total} {self.unit}", final=done >= total)

    def __enter__(self) -> CountProgress:
        self.bar.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.bar.stop()


class TrainProgress:
    """Steps, loss, pairs/s and temperature of a training run; notes (resuming, warnings) as lines."""

    def __init__(self, enabled: bool = True) -> None:
        from rich.progress import TextColumn, TimeRemainingColumn

        self.enabled = enabled
        self.lines = None if err.is_terminal or not enabled else Lines()
        self.bar = _bar(
            TextColumn("loss {task.fields[loss]:.3f}  {task.fields[rate]:.0f} pairs/s  T {task.fields[temp]:.3f}"),
            TimeRemainingColumn(),
            enabled=enabled and err.is_terminal,
        )
        self.task = self.bar.add_task("training", total=None, loss=0.0, rate=0.0, temp=0.0)

    def stage(self, note: str) -> None:
        """A note from the run ("resuming at step 19 of 50"), printed above the bar."""
        if self.enabled:
            err.print(note, highlight=False)

    def update(self, progress: dual.TrainProgress) -> None:
        p = progress
        self.bar.start()  # on the first step, so a run that fails to start draws no bar
        self.bar.update(
            self.task, completed=p.step, total=p.total, loss=p.loss, rate=p.pairs_per_second, temp=p.temperature
        )
        if self.lines is not None:
            self.lines.tick(
                f"training: step {p.step}/{p.total}, loss {p.loss:.3f}, {p.pairs_per_second:.0f} pairs/s, "
                f"T {p.temperature:.3f}",
                final=p.step >= p.total,
            )

    def __enter__(self) -> TrainProgress:
        return self

    def __exit__(self, *exc: object) -> None:
        self.bar.stop()


class RerankProgress:
    """Phase, loss and pairs/s of a reranker training run."""

    def __init__(self, enabled: bool = True) -> None:
        from rich.progress import TextColumn, TimeRemainingColumn

        self.lines = None if err.is_terminal or not enabled else Lines()
        self.bar = _bar(
            TextColumn("loss {task.fields[loss]:.3f}  {task.fields[rate]:.0f} pairs/s"),
            TimeRemainingColumn(),
            enabled=enabled and err.is_terminal,
        )
        self.task = self.bar.add_task("rerank", total=None, loss=0.0, rate=0.0)
        self.phase = ""

    def update(self, p: rerank_train.RerankProgress) -> None:
        self.bar.start()
        self.bar.update(
            self.task, completed=p.done, total=p.total, description=p.phase, loss=p.loss, rate=p.pairs_per_second
        )
        if self.lines is not None:
            final = p.done >= p.total or p.phase != self.phase
            self.phase = p.phase
            self.lines.tick(
                f"{p.phase}: {p.done}/{p.total}, loss {p.loss:.3f}, {p.pairs_per_second:.0f} pairs/s",
                final=final,
            )

    def __enter__(self) -> RerankProgress:
        return self

    def __exit__(self, *exc: object) -> None:
        self.bar.stop()
