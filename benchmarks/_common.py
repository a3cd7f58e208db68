"""Shared helpers for the benchmark scripts: environment record, statistics, output.

Every figure a benchmark prints goes out with the hardware, commit, versions and the
command that produced it (house-style rule 12), so results in README.md can be traced.
"""

from __future__ import annotations

import datetime as _dt
import functools
import json
import os
import platform
import shlex
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
if str(REPO_ROOT) not in sys.path:  # run as a script from anywhere: make retrieval/ and index/ importable
    sys.path.insert(0, str(REPO_ROOT))

# Benchmarks never touch the network (open_clip / huggingface_hub honour this).
os.environ.setdefault("HF_HUB_OFFLINE", "1")


def git_commit() -> str:
    """Short HEAD commit, with ``+dirty`` when the working tree has changes."""
    try:
        head = subprocess.run(
            ["git", "-C", str(REPO_ROOT), "rev-parse", "--short", "HEAD"], capture_output=True, text=True, check=True
        ).stdout.strip()
        status = subprocess.run(
            ["git", "-C", str(REPO_ROOT), "status", "--porcelain"], capture_output=True, text=True, check=True
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return head + ("+dirty" if status else "")


def cpu_model() -> str:
    """``lscpu`` model name (falls back to ``platform.processor()``)."""
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True, check=True).stdout
    except (OSError, subprocess.CalledProcessError):
        return platform.processor() or "unknown"
    for line in out.splitlines():
        if line.startswith("Model name:"):
            return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown"


def ram_gib() -> float:
    """Total RAM in GiB from /proc/meminfo (0 when unknown)."""
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return round(int(line.split()[1]) / 2**20, 1)
    except OSError:
        pass
    return 0.0


def environment(modules: Sequence[str] = ("numpy", "faiss", "torch", "open_clip", "PIL")) -> dict[str, object]:
    """Hardware, software versions, commit, date and command of this run."""
    versions: dict[str, str] = {"python": platform.python_version()}
    for name in modules:
        try:
            module = __import__(name)
        except ImportError:
            continue
        versions[name] = str(getattr(module, "__version__", "?"))
    env: dict[str, object] = {
        "date": _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "commit": git_commit(),
        "cpu": cpu_model(),
        "cores": os.cpu_count(),
        "ram_gib": ram_gib(),
        "versions": versions,
        "command": " ".join(shlex.quote(a) for a in [".venv/bin/python", *sys.argv]),
    }
    if "torch" in sys.modules:
        env["torch_threads"] = sys.modules["torch"].get_num_threads()
    if "faiss" in sys.modules:
        env["faiss_threads"] = sys.modules["faiss"].omp_get_max_threads()
    return env


def environment_line(env: dict[str, object]) -> str:
    """One human-readable line describing ``env`` (printed next to the tables)."""
    versions = ", ".join(f"{k} {v}" for k, v in env["versions"].items())  # type: ignore[union-attr]
    return (
        f"commit {env['commit']} | {env['cpu']}, {env['cores']} cores, {env['ram_gib']} GiB RAM | "
        f"{versions} | {env['date']}\ncommand: {env['command']}"
    )


def median(values: Sequence[float]) -> float:
    return float(statistics.median(values))


def percentile(values: Sequence[float], q: float) -> float:
    """``q``-th percentile (0..100), linear interpolation (numpy's default)."""
    import numpy as np

    return float(np.percentile(np.asarray(values, dtype=np.float64), q))


def timed(fn: Callable[[], object]) -> tuple[float, object]:
    """(seconds, result) of one call."""
    start = time.perf_counter()
    result = fn()
    return time.perf_counter() - start, result


def markdown_table(header: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def write_json(path: str | Path | None, payload: dict[str, object]) -> None:
    if not path:
        return
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(payload, indent=2, default=str) + "\n")


@functools.cache
def blas_thread_setter() -> Callable[[int], None] | None:
    """A function that sets numpy's OpenBLAS thread count, or None when it cannot be found.

    numpy's wheels bundle scipy-openblas, whose C API has a ``set_num_threads`` entry;
    loading the already-loaded library again through ctypes returns the same handle.
    """
    import ctypes

    import numpy as np

    libs = Path(np.__file__).resolve().parent.parent / "numpy.libs"
    for lib in sorted(libs.glob("libscipy_openblas*.so")):
        handle = ctypes.CDLL(str(lib))
        for symbol in (
            "scipy_openblas_set_num_threads64_",
            "scipy_openblas_set_num_threads",
            "openblas_set_num_threads",
        ):
            setter = getattr(handle, symbol, None)
            if setter is not None:
                return lambda n, _set=setter: _set(ctypes.c_int(n))
    return None
