"""Lazy imports of heavy or optional dependencies, each naming its install command.

``xmr --help`` must not pay for torch or faiss, so modules call these helpers at the
point of use instead of importing at the top.
"""

from __future__ import annotations

import importlib
import importlib.util
import os
import platform
import re
import sys
from types import ModuleType

from index.errors import MissingDependencyError

FAISS_HINT = (
    "faiss is not installed. Install the CPU build with  pip install 'xmr[cpu]'  "
    "or, on a CUDA machine, the GPU build with  pip install 'xmr[gpu]'  (never both)."
)

TORCH_HINT = "pip install 'xmr[torch]'"


def attempt_import(module: str, install_hint: str) -> ModuleType:
    """Import ``module`` or raise :class:`MissingDependencyError` carrying ``install_hint``."""
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise MissingDependencyError(f"{install_hint} (import of {module!r} failed: {exc})") from exc


def require_faiss() -> ModuleType:
    """Return the faiss module, or raise with the command that installs it."""
    return attempt_import("faiss", FAISS_HINT)


def check_faiss() -> None:
    """Raise :class:`MissingDependencyError` with the install command unless faiss can be imported
    (found without importing it: ~0.1 s a command-line search may never need)."""
    try:
        found = importlib.util.find_spec("faiss") is not None
    except (ImportError, ValueError):  # a blocked or half-removed package
        found = False
    if not found:
        raise MissingDependencyError(f"{FAISS_HINT} (faiss is not installed)")


def faiss_has_gpu(faiss: ModuleType) -> bool:
    """True when this faiss build has GPU support and sees at least one CUDA device."""
    return hasattr(faiss, "StandardGpuResources") and faiss.get_num_gpus() > 0


def torch_installed() -> bool:
    """True when torch and open_clip can be imported (checked without importing them)."""
    try:
        return importlib.util.find_spec("torch") is not None and importlib.util.find_spec("open_clip") is not None
    except (ImportError, ValueError):  # a blocked or half-removed package
        return False


def require_torch(what: str) -> None:
    """Raise :class:`MissingDependencyError` naming the install command unless torch and open_clip are installed."""
    if not torch_installed():
        raise MissingDependencyError(f"{what} needs torch and open_clip, which are not installed: {TORCH_HINT}")


def installed_version(distribution: str) -> str:
    """The version of the installed ``distribution`` ("" when it is not installed).

    Read from the name of its ``.dist-info`` (or ``.egg-info``) folder, first on ``sys.path``
    as :func:`importlib.metadata.version` finds it, without importing importlib.metadata
    (about 20 ms: a command-line search would pay it for one version string).
    """
    wanted = _normalized(distribution)
    for entry in sys.path:
        try:
            names = os.listdir(entry or ".")
        except OSError:  # a zip, a missing folder
            continue
        for name in names:
            stem, dot, suffix = name.rpartition(".")
            if dot and suffix in ("dist-info", "egg-info"):
                project, _, version = stem.partition("-")
                if version and _normalized(project) == wanted:
                    return version.split("-py", 1)[0]  # an egg-info's "-py3.11" tail is not the version
    return ""


def _normalized(name: str) -> str:
    """A project name as packaging compares them (PEP 503: case and runs of -_. do not matter)."""
    return re.sub(r"[-_.]+", "-", name).lower()


def gpu_present() -> bool:
    """A guess, without importing torch, whether torch would find a GPU (CUDA, or Apple's MPS)."""
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    if visible is not None and visible.strip() in ("", "-1"):
        cuda = False
    else:
        try:
            cuda = bool(os.listdir("/proc/driver/nvidia/gpus"))
        except OSError:
            cuda = False
    return cuda or (platform.system() == "Darwin" and platform.machine() == "arm64")
