"""A test-only fault hook: SIGKILL this process just before its Kth persistent write.

What it reaches: every ``os.replace``/``os.rename`` (atomic file writes and the lock file),
``os.fsync``/``os.fdatasync`` (a temp file's contents made durable), ``os.unlink``/``os.remove``
(a checkpoint dropped, a temp cleaned up) and every SQLAlchemy commit (a catalog transaction):
the points at which what a run leaves on disk changes, in the order the process makes them.
What it cannot reach: writes made in C (SQLite's own ``pwrite64`` into its WAL, torch.save's
``write`` calls between two hooked points): strace reaches those (see
:mod:`tests.helpers.crash_runner`), which is why the crash tests use strace where it exists.

Armed by :func:`arm` (the crash runner's forked child) or from ``$XMR_CRASH_AT`` (``K`` or
``K:op,op``) by :func:`arm_from_env`, e.g. from a ``sitecustomize`` for a plain subprocess.
"""

from __future__ import annotations

import os
import signal
import threading
from collections.abc import Callable

__all__ = ["ENV", "OPS", "arm", "arm_from_env", "events"]

ENV = "XMR_CRASH_AT"
OPS = ("replace", "fsync", "unlink", "commit")  # kinds of events; rename counts as replace, remove as unlink

_events: list[tuple[str, str]] = []  # (op, what) of every event so far, the killing one last
_lock = threading.Lock()  # the commit thread and the main thread both write


def events() -> list[tuple[str, str]]:
    """The events counted since :func:`arm` (op, file or ``catalog``)."""
    with _lock:
        return list(_events)


def arm(at: int, ops: tuple[str, ...] = OPS) -> None:
    """Count the events of kinds ``ops``; SIGKILL the process just before the ``at``-th (0: never)."""
    unknown = set(ops) - set(OPS)
    if unknown:
        raise ValueError(f"unknown crash ops {sorted(unknown)}; known: {', '.join(OPS)}")

    def event(op: str, what: object) -> None:
        if op not in ops:
            return
        with _lock:
            _events.append((op, str(what)))
            due = len(_events) == at
        if due:
            os.kill(os.getpid(), signal.SIGKILL)

    def wrap(op: str, call: Callable, describe: Callable = lambda *a: a[0] if a else "") -> Callable:
        def hooked(*args: object, **kwargs: object) -> object:
            event(op, describe(*args))
            return call(*args, **kwargs)

        hooked.__wrapped__ = call  # type: ignore[attr-defined]
        return hooked

    os.replace = wrap("replace", os.replace, lambda src, dst, *a, **k: dst)  # type: ignore[assignment]
    os.rename = wrap("replace", os.rename, lambda src, dst, *a, **k: dst)  # type: ignore[assignment]
    os.fsync = wrap("fsync", os.fsync, _fd_name)  # type: ignore[assignment]
    os.fdatasync = wrap("fsync", os.fdatasync, _fd_name)  # type: ignore[assignment]
    os.unlink = wrap("unlink", os.unlink)  # type: ignore[assignment]
    os.remove = wrap("unlink", os.remove)  # type: ignore[assignment]
    from sqlalchemy.engine.default import DefaultDialect

    DefaultDialect.do_commit = wrap("commit", DefaultDialect.do_commit, lambda *a: "catalog")  # type: ignore[method-assign]


def arm_from_env() -> None:
    """:func:`arm` as ``$XMR_CRASH_AT`` says (``K`` or ``K:op,op``); nothing when it is unset."""
    spec = os.environ.get(ENV, "")
    if not spec:
        return
    at, _, ops = spec.partition(":")
    arm(int(at), tuple(ops.split(",")) if ops else OPS)


def _fd_name(fd: object, *_: object) -> str:
    try:
        return os.readlink(f"/proc/self/fd/{int(fd)}")  # type: ignore[call-overload]
    except (OSError, TypeError, ValueError):
        return str(fd)
