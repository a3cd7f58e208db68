"""Run ``xmr`` commands that die at a chosen write, cheaply: a warm process forks one child per run.

Importing torch and open_clip costs seconds; a crash sweep runs hundreds of commands. The
runner (``python -m tests.helpers.crash_runner``) imports them once, then for each request
forks a child that runs the CLI in-process (``cli.app``), exactly as ``xmr`` would, and
reports how it ended. Nothing in the runner itself uses torch, so each fork starts clean.

A child dies at its Kth write in one of two ways:

* ``strace``: the child stops itself, strace attaches to it (``-p PID -f``) with
  ``-e inject=SYSCALLS:signal=SIGKILL:when=K``, and it goes on. strace counts per syscall and
  per thread, and reaches every write the process makes, SQLite's own ``pwrite64`` included.
* ``hook``: :mod:`tests.helpers.crash_hook` kills it before its Kth Python-level event (an
  ``os.replace``, ``os.fsync``, ``os.unlink`` or catalog commit), counted over all threads.

A counting run (``count=True``) reports how many events (hook) or syscalls per thread (strace)
an uninterrupted run makes, which bounds the sweep.
"""

from __future__ import annotations

import contextlib
import functools
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

__all__ = ["SYSCALLS", "Crash", "Outcome", "Runner", "strace_available"]

# Syscall classes a sweep kills at: SQLite's page writes, plain writes (temp files, torch.save),
# renames (atomic replaces) and fsyncs. Names are strace's (x86-64 and arm64 both know these).
SYSCALLS = {
    "pwrite": "pwrite64",
    "write": "write",
    "rename": "rename,renameat,renameat2",
    "fsync": "fsync,fdatasync",
}


@functools.cache
def strace_available() -> bool:
    """Whether strace is installed and may trace here (a container may forbid ptrace)."""
    if shutil.which("strace") is None:
        return False
    with contextlib.suppress(OSError, ValueError):  # Yama: 1 is handled by the child (PR_SET_PTRACER)
        scope = int(Path("/proc/sys/kernel/yama/ptrace_scope").read_text())
        if scope >= 3 or (scope == 2 and os.geteuid() != 0):  # attaching is for admins, or for no one
            return False
    probe = subprocess.run(["strace", "-f", "-o", os.devnull, "true"], capture_output=True, timeout=60)
    return probe.returncode == 0


@dataclass(frozen=True)
class Crash:
    """Where a run is killed: ``mechanism`` "hook" or "strace"; ``at`` the Kth event (1-based)."""

    mechanism: str  # "hook" or "strace"
    at: int  # the Kth event (hook: over all threads) or syscall (strace: per thread) of ``what``
    what: str = ""  # hook: comma-separated ops (empty: all); strace: a key of SYSCALLS


@dataclass
class Outcome:
    """How a run ended."""

    returncode: int | None  # exit status; None when it was killed
    killed: bool  # died of SIGKILL (the injected fault)
    stdout: str
    stderr: str
    events: list[tuple[str, str]] = field(default_factory=list)  # hook: what it counted
    syscalls: dict[str, int] = field(default_factory=dict)  # strace count: most per thread, by class


class Runner:
    """A warm process that forks a child per command. Use as a context manager."""

    def __init__(self, env: dict[str, str], workdir: Path) -> None:
        self.workdir = Path(workdir)
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.env = dict(env)
        self._serial = 0
        repo = Path(__file__).resolve().parents[2]
        self._proc = subprocess.Popen(
            [sys.executable, "-m", "tests.helpers.crash_runner"],
            cwd=repo,
            env=self.env,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        ready = self._proc.stdout.readline()  # type: ignore[union-attr]
        if ready.strip() != "ready":
            raise RuntimeError(f"the crash runner did not start: {ready!r}")

    def run(self, argv: list[str], crash: Crash | None = None, count: str = "", timeout: float = 300) -> Outcome:
        """Run ``xmr ARGV`` in a fresh fork; ``count`` ("hook" or "strace") also counts its events."""
        self._serial += 1
        base = self.workdir / f"run{self._serial:05d}"
        request = {
            "argv": argv,
            "crash": None if crash is None else crash.__dict__,
            "count": count,
            "stdout": f"{base}.out",
            "stderr": f"{base}.err",
            "result": f"{base}.json",
        }
        self._proc.stdin.write(json.dumps(request) + "\n")  # type: ignore[union-attr]
        self._proc.stdin.flush()  # type: ignore[union-attr]
        line = self._proc.stdout.readline()  # type: ignore[union-attr]
        if not line:
            raise RuntimeError("the crash runner died")
        reply = json.loads(line)
        if "error" in reply:
            raise RuntimeError(f"the crash runner could not run {argv}: {reply['error']}")
        return Outcome(
            returncode=reply["returncode"],
            killed=reply["killed"],
            stdout=Path(request["stdout"]).read_text(errors="replace"),
            stderr=Path(request["stderr"]).read_text(errors="replace"),
            events=[tuple(e) for e in reply.get("events", [])],  # type: ignore[misc]
            syscalls=reply.get("syscalls", {}),
        )

    def close(self) -> None:
        if self._proc.poll() is None:
            self._proc.stdin.close()  # type: ignore[union-attr]
            try:
                self._proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait()

    def __enter__(self) -> Runner:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


# ---- the runner process -------------------------------------------------------------------


def _serve() -> None:
    """Import the heavy modules once, then fork a child per request read from stdin."""
    import faiss  # noqa: F401
    import open_clip  # noqa: F401
    import rich.progress  # noqa: F401
    import torch  # noqa: F401
    from PIL import Image

    Image.init()  # every format plugin, as a decode would load them
    import cli  # noqa: F401
    import retrieval.images.decode  # noqa: F401
    import retrieval.library  # noqa: F401
    import retrieval.training.dual  # noqa: F401
    import retrieval.training.rerank_train  # noqa: F401
    from tests.helpers import crash_hook  # noqa: F401

    print("ready", flush=True)
    for line in sys.stdin:
        try:
            reply = _one(json.loads(line))
        except Exception as exc:  # the harness itself failed (strace could not attach): say why
            reply = {"error": f"{exc.__class__.__name__}: {exc}"}
        print(json.dumps(reply), flush=True)


def _one(request: dict) -> dict:
    crash = request["crash"]
    strace = (crash and crash["mechanism"] == "strace") or request["count"] == "strace"
    pid = os.fork()
    if pid == 0:  # the child: never returns
        _child(request, strace)
    tracer = trace_log = None
    if strace:
        _, status = os.waitpid(pid, os.WUNTRACED)  # the child stopped itself, waiting for strace
        if not os.WIFSTOPPED(status):
            return {"returncode": os.waitstatus_to_exitcode(status), "killed": False}
        tracer, trace_log = _attach(pid, crash, request)
    _, status = os.waitpid(pid, 0)
    reply: dict[str, object] = {"returncode": None, "killed": False}
    if os.WIFSIGNALED(status):
        reply["killed"] = os.WTERMSIG(status) == signal.SIGKILL
    else:
        reply["returncode"] = os.waitstatus_to_exitcode(status)
    if tracer is not None:
        tracer.wait(timeout=60)
    with contextlib.suppress(OSError, ValueError):
        reply["events"] = json.loads(Path(request["result"]).read_text())
    if request["count"] == "strace" and trace_log is not None:
        reply["syscalls"] = _count_syscalls(trace_log)
    return reply


def _attach(pid: int, crash: dict | None, request: dict) -> tuple[subprocess.Popen, Path]:
    """Start strace on the stopped child, wait until it is attached, then let the child go on."""
    log = Path(request["result"]).with_suffix(".strace")
    messages = Path(request["result"]).with_suffix(".strace-err")
    wanted = ",".join(SYSCALLS.values())
    command = ["strace", "-f", "-o", str(log) if request["count"] == "strace" else "/dev/null"]
    command += ["-e", f"trace={wanted}"]
    if crash:
        command += ["-e", f"inject={SYSCALLS[crash['what']]}:signal=SIGKILL:when={crash['at']}"]
    with open(messages, "wb") as err:
        tracer = subprocess.Popen([*command, "-p", str(pid)], stderr=err, stdout=subprocess.DEVNULL)
    deadline = time.monotonic() + 30
    while b"attached" not in messages.read_bytes():
        if tracer.poll() is not None or time.monotonic() > deadline:
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
            raise RuntimeError(f"strace could not attach: {messages.read_text(errors='replace')}")
        time.sleep(0.005)
    os.kill(pid, signal.SIGCONT)
    return tracer, log


def _count_syscalls(log: Path) -> dict[str, int]:
    """The most calls one thread made, per syscall class (strace counts injections per thread)."""
    per_thread: Counter[tuple[str, str]] = Counter()
    names = {name: key for key, value in SYSCALLS.items() for name in value.split(",")}
    for line in log.read_text(errors="replace").splitlines():
        parts = line.split(None, 1)
        if len(parts) < 2:
            continue
        call = parts[1].split("(", 1)[0].removeprefix("<... ").split(" ", 1)[0]
        if call in names and "resumed>" not in parts[1]:
            per_thread[(parts[0], names[call])] += 1
    best: dict[str, int] = {}
    for (_, key), n in per_thread.items():
        best[key] = max(best.get(key, 0), n)
    return best


def _child(request: dict, strace: bool) -> None:
    """Run the CLI as ``xmr`` would, after arming the fault (or waiting for strace); exit."""
    code = 1
    try:
        out = os.open(request["stdout"], os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        err = os.open(request["stderr"], os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        os.dup2(out, 1)
        os.dup2(err, 2)
        sys.stdin = open(os.devnull)  # noqa: SIM115 (the child exits with os._exit)
        from tests.helpers import crash_hook

        crash = request["crash"]
        if strace:
            _allow_tracer()
            os.kill(os.getpid(), signal.SIGSTOP)  # strace attaches, then SIGCONT
        elif crash or request["count"] == "hook":
            crash_hook.arm(
                crash["at"] if crash else 0,
                tuple(crash["what"].split(",")) if crash and crash["what"] else crash_hook.OPS,
            )
        from cli import app

        try:
            app(request["argv"], prog_name="xmr")
            code = 0
        except SystemExit as exit_:
            code = exit_.code if isinstance(exit_.code, int) else (0 if exit_.code is None else 1)
        if request["count"] == "hook":
            Path(request["result"]).write_text(json.dumps(crash_hook.events()))
    except BaseException:  # a crash of the harness itself shows in the child's stderr
        import traceback

        traceback.print_exc()
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)


def _allow_tracer() -> None:
    """Where Yama restricts ptrace to ancestors, let any process (strace, a sibling) attach."""
    with contextlib.suppress(Exception):
        import ctypes

        pr_set_ptracer, any_process = 0x59616D61, -1
        ctypes.CDLL(None).prctl(pr_set_ptracer, ctypes.c_ulong(any_process & 0xFFFFFFFFFFFFFFFF), 0, 0, 0)


if __name__ == "__main__":
    _serve()
