"""Kill points of a crash test and what they found, for the test's verdict and the figures.

``XMR_CRASH_REPORT=FILE`` makes the crash tests write their tallies there as JSON (the
figures in benchmarks/README.md come from a sweep run that way).
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path

from tests.helpers.crash_runner import SYSCALLS, Crash, Outcome

__all__ = ["REPORT_ENV", "Tally", "kill_points", "write_report"]

REPORT_ENV = "XMR_CRASH_REPORT"


def kill_points(mechanism: str, counted: Outcome, limit: int | None = None) -> list[Crash]:
    """Every kill point of a run counted with ``mechanism`` (strace: each syscall class, each
    Kth call; hook: each Kth event), or ``limit`` of them spread evenly over that list."""
    if mechanism == "strace":
        points = [Crash("strace", k, what) for what in SYSCALLS for k in range(1, counted.syscalls.get(what, 0) + 1)]
    else:
        points = [Crash("hook", k) for k in range(1, len(counted.events) + 1)]
    if limit is None or len(points) <= limit:
        return points
    step = len(points) / limit
    return [points[int(step * (i + 0.5))] for i in range(limit)]


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
