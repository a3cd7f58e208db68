"""Lazy imports of heavy or optional dependencies, each naming its install command.

``xmr --help`` must not pay for torch or faiss, so modules call these helpers at the
point of use instead of importing at the top.
"""

from __future__ import annotations

import importlib
from types import ModuleType

from index.errors import MissingDependencyError

FAISS_HINT = (
    "faiss is not installed. Install the CPU build with  pip install 'xmr[cpu]'  "
    "or, on a CUDA machine, the GPU build with  pip install 'xmr[gpu]'  (never both)."
)


def attempt_import(module: str, install_hint: str) -> ModuleType:
    """Import ``module`` or raise :class:`MissingDependencyError` carrying ``install_hint``."""
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise MissingDependencyError(f"{install_hint} (import of {module!r} failed: {exc})") from exc


def require_faiss() -> ModuleType:
    """Return the faiss module, or raise with the command that installs it."""
    return attempt_import("faiss", FAISS_HINT)


def faiss_has_gpu(faiss: ModuleType) -> bool:
    """True when this faiss build has GPU support and sees at least one CUDA device."""
    return hasattr(faiss, "StandardGpuResources") and faiss.get_num_gpus() > 0
