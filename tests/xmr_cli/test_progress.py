"""Progress into a pipe: a line per stage and a count line now and then, with the time left."""

from __future__ import annotations

import io
from dataclasses import dataclass

import pytest
from rich.console import Console

import xmr_cli.progress as progress


@dataclass
class _Done:
    done: int
    total: int
    failed: int
    seconds: float


def test_time_left_is_said_once_a_rate_is_known() -> None:
    assert progress.time_left(0, 100, 5.0) == ""
    assert progress.time_left(25, 100, 10.0) == "0:00:30"
    assert progress.time_left(100, 100, 10.0) == ""


def test_an_index_run_into_a_pipe_prints_stages_and_spaced_counts(monkeypatch: pytest.MonkeyPatch) -> None:
    stream = io.StringIO()
    monkeypatch.setattr(progress, "err", Console(file=stream, force_terminal=False))
    now = [0.0]
    monkeypatch.setattr(progress.Lines, "clock", staticmethod(lambda: now[0]))
    with progress.IndexProgress(enabled=True) as bar:
        bar.stage("loading the model")
        bar.start(96, 0)
        bar.stage("embedding")
        for done, seconds in ((32, 4.0), (64, 8.0), (96, 12.0)):
            now[0] = seconds
            bar.update(_Done(done, 96, 0, seconds))
    lines = stream.getvalue().splitlines()
    assert lines == [
        "loading the model…",
        "embedding…",
        "embedding: 32/96 images, 8.0 img/s, 0 failed, about 0:00:08 left",  # the first count at once
        # 64/96 came 1 s later: within LINE_SECONDS, not printed
        "embedding: 96/96 images, 8.0 img/s, 0 failed",  # the last one always
    ]
