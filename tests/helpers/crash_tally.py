"""Kill points of a crash test and what they found, for the test's verdict and the figures.

``XMR_CRASH_REPORT=FILE`` makes the crash tests write their tallies there as JSON (the
figures in benchmarks/README.md come from a sweep run that way).
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path

from tests.helpers.crash_runner import Crash, Outcome

__all__ = ["FIRST_ENV", "REPORT_ENV", "Tally", "kill_points", "sweep_first", "write_report"]

REPORT_ENV = "XMR_CRASH_REPORT"
FIRST_ENV = "XMR_CRASH_FIRST"  # the sweep's kill points per syscall class: the first N and N more spread (0: all)
SWEEP_FIRST = 12  # its default: the sweep of every command then takes about half an hour on 2 cores
QUICK_ORDER = ("rename", "fsync", "pwrite", "write")  # the strace classes (SYSCALLS) the quick run takes in turn


def sweep_first() -> int:
    """How many of the first calls per class the sweep kills at (``$XMR_CRASH_FIRST``, default 12)."""
    return int(os.environ.get(FIRST_ENV, SWEEP_FIRST))


def kill_points(mechanism: str, counted: Outcome, limit: int | None = None, first: int = 0) -> list[Crash]:
    """Kill points of a run counted with ``mechanism`` (strace: each syscall class, each Kth call
    of it; hook: each Kth event).

    ``limit`` (the quick run): that many points, taken from the classes in turn (renames first:
    a kill there leaves a temp file for the rerun to clean), each in the middle of its calls.
    Else ``first`` (the sweep; 0: every point): per class, each of the first ``first`` calls and
    ``first`` more spread evenly over the rest, so that the last writes of a run (its final
    snapshot, its weights) are killed at too.
    """
    if mechanism == "strace":
        classes = {what: counted.syscalls.get(what, 0) for what in QUICK_ORDER}
    else:
        classes = {"": len(counted.events)}
    classes = {what: n for what, n in classes.items() if n}
    if limit is None:
        return [Crash(mechanism, k, what) for what, n in classes.items() for k in _calls(n, first)]
    turns = [list(classes)[i % len(classes)] for i in range(limit)] if classes else []
    points = []
    for what in dict.fromkeys(turns):
        times = min(turns.count(what), classes[what])
        points += [Crash(mechanism, max(1, round(classes[what] * (j + 0.5) / times)), what) for j in range(times)]
    return points


def _calls(count: int, first: int) -> list[int]:
    """1..count, or its first ``first`` and ``first`` more spread over the rest (last included)."""
    if not first or count <= 2 * first:
        return list(range(1, count + 1))
    rest = count - first
    return [*range(1, first + 1), *sorted({first + round(rest * (i + 1) / first) for i in range(first)})]


@dataclass
class Tally:
    """One command's crash trials with one mechanism."""

    command: str
    mechanism: str
    depth: str  # "quick" (a handful of points) or "sweep" (every point)
    tried: int = 0  # kill points tried
    killed: int = 0  # of those, runs that died there (the rest ended before reaching it)
    temps_after_kill: int = 0  # temp files the killed runs left (what the next run has to clean)
    temps_left: int = 0  # temp files still there after the completed rerun (target 0)
    problems: list[str] = field(default_factory=list)  # disagreements with the oracle (target none)

    def record(self, point: Crash, killed: Outcome, temps: int, problems: list[str], note: str = "") -> None:
        self.tried += 1
        self.killed += killed.killed
        self.temps_after_kill += temps
        self.temps_left += sum("temp file" in p for p in problems)
        where = f"{point.mechanism} {point.what or 'event'} #{point.at}"
        self.problems += [f"[{self.command}, kill at {where}{note}] {p}" for p in problems]

    def summary(self) -> str:
        return (
            f"{self.command} ({self.mechanism}, {self.depth}): {self.tried} kill points, {self.killed} killed, "
            f"{len(self.problems)} inconsistencies, temp files {self.temps_after_kill} after kills / "
            f"{self.temps_left} after reruns"
        )


def write_report(tallies: list[Tally]) -> None:
    """Add ``tallies`` to ``$XMR_CRASH_REPORT`` (JSON list) when it is set."""
    target = os.environ.get(REPORT_ENV)
    if not target or not tallies:
        return
    path = Path(target)
    old = json.loads(path.read_text()) if path.exists() else []
    path.write_text(json.dumps(old + [asdict(t) | {"problems": len(t.problems)} for t in tallies], indent=2) + "\n")
