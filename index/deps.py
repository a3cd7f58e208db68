"""Lazy imports of heavy or optional dependencies, each naming its install command.

``xmr --help`` must not pay for torch or faiss, so modules call these helpers at the
point of use instead of importing at the top.
"""

from __future__ import annotations

import importlib
import importlib.util
import os
import platform
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
