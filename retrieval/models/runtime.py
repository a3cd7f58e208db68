"""Which runtime runs a model (onnxruntime or torch), and loading the encoder on it.

``auto`` picks onnxruntime wherever it is at least as fast: for queries and text batches
everywhere (one short text runs faster on onnxruntime's CPU than torch takes to import),
and for images on the CPU. Images on a GPU go to torch, which keeps nvJPEG decoding and
mixed precision. Without torch installed everything runs on onnxruntime.

A model runs on onnxruntime through an ONNX export: a folder or hub repo named by
``--model``, the export cache, a registered hub export of an open_clip tag, or, with
torch installed, a new export made once into the cache. None of these steps but the
last imports torch.
"""

from __future__ import annotations

import os
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING

from index.deps import TORCH_HINT, gpu_present, require_torch, torch_installed
from index.errors import MissingDependencyError
from index.manifest import ModelIdentity
from retrieval.errors import DeviceError, ExportError
from retrieval.models.exports import (
    HUB,
    ExportInfo,
    cached_export,
    get_hub_export,
    hub_export_folder,
    is_export_folder,
    is_hub_export,
    is_hub_export_cached,
    read_export,
)
from retrieval.models.specs import LOCAL_DIR, ModelSpec, ResolvedModel, resolve

if TYPE_CHECKING:
    from retrieval.models.encoder import Encoder

RUNTIMES = ("auto", "onnx", "torch")
FOR_QUERIES = "queries"  # texts and single images: what searches, serving and add-texts encode
FOR_IMAGES = "images"  # image batches: what indexing encodes


def pick_runtime(requested: str = "auto", device: str = "auto", purpose: str = FOR_QUERIES) -> str:
    """``onnx`` or ``torch`` for ``requested`` ("auto", "onnx", "torch") on ``device``.

    Args:
        requested: the ``--runtime`` asked for.
        device: the ``--device`` asked for.
        purpose: ``FOR_QUERIES`` (texts, single images) or ``FOR_IMAGES`` (indexing batches).

    Raises:
        DeviceError: an unknown runtime.
        MissingDependencyError: torch was asked for and is not installed.
    """
    if requested not in RUNTIMES:
        raise DeviceError(f"runtime must be one of {', '.join(RUNTIMES)}, not {requested!r}")
    if requested == "torch":
        require_torch("--runtime torch")
        return "torch"
    if requested == "onnx" or not torch_installed() or purpose == FOR_QUERIES or device == "cpu":
        return "onnx"
    if device.startswith("cuda") or device == "mps":
        return "torch"
    return "torch" if device == "auto" and gpu_present() else "onnx"


def open_encoder(
    spec: ModelSpec | ResolvedModel,
    device: str = "auto",
    runtime: str = "auto",
    purpose: str = FOR_QUERIES,
    threads: int = 0,
    prepack: bool = True,
) -> Encoder:
    """The encoder of ``spec`` on the runtime :func:`pick_runtime` picks (``load_encoder`` of
    :mod:`retrieval.models.encoder` is the torch one, for what only torch does: training, tokens).
    ``threads`` bounds onnxruntime's threads per session (0: its default, one per core);
    ``prepack=False`` opens onnxruntime sessions sooner and runs them slower (one-shot processes).

    Raises:
        ModelNotFoundError, WeightsUnavailableError: the model cannot be found or fetched.
        MissingDependencyError: the model needs torch (to run or to export) and it is missing.
        ExportError, DeviceError: see :func:`find_export` and the encoders.
    """
    if pick_runtime(runtime, device, purpose) == "torch":
        from retrieval.models.encoder import load_encoder

        if isinstance(spec, ModelSpec) and _export_path(spec) is not None:
            raise ExportError(f"{spec.model} is an ONNX export, which runs on onnxruntime: use --runtime onnx or auto.")
        return load_encoder(spec, device)
    from retrieval.models.onnx_encoder import OnnxEncoder

    if isinstance(spec, ResolvedModel):
        spec = ModelSpec(spec.identity.spec, spec.identity.spec_pretrained)
    return OnnxEncoder(find_export(spec), device, threads, prepack)


def find_export(spec: ModelSpec) -> ExportInfo:
    """The ONNX export that runs ``spec``: named directly, cached, registered on the hub, or made now.

    Raises:
        MissingDependencyError: no export is at hand and making one needs torch.
        ExportError: an export folder is damaged, or the model has no faithful ONNX form.
        WeightsUnavailableError: a hub export or the weights to export cannot be fetched.
    """
    direct = _direct_export(spec)
    if direct is not None:
        return direct
    found = cached_export(spec)
    if found is not None:
        return found
    hub = get_hub_export(spec.model.strip(), spec.pretrained.strip())
    if hub is not None and (not torch_installed() or is_hub_export_cached(hub.repo)):
        return _hub_table_export(spec)
    if not torch_installed():
        raise MissingDependencyError(
            f"{_label(spec)} has no ONNX export on this machine, and making one needs torch: {TORCH_HINT}. "
            "Or pass an export: --model /path/to/export-folder (from  xmr export-model) or --model hf-hub:ORG/REPO."
        )
    from retrieval.models.export import ensure_export

    return ensure_export(spec)


def model_identity(spec: ModelSpec) -> ModelIdentity:
    """The identity of ``spec``'s vectors, without importing torch where an export or registry knows it.

    Raises:
        ModelNotFoundError, WeightsUnavailableError, ExportError: as :func:`find_export` and
            :func:`retrieval.models.specs.resolve`.
    """
    direct = _direct_export(spec)
    if direct is not None:
        return direct.identity
    found = cached_export(spec)
    if found is not None:
        return found.identity
    hub = get_hub_export(spec.model.strip(), spec.pretrained.strip())
    if hub is not None:
        return ModelIdentity(hub.arch, hub.pretrained, "", hub.embed_dim, hub.arch, hub.pretrained)
    if not torch_installed() and not _is_folder_spec(spec):
        raise MissingDependencyError(
            f"{_label(spec)} is an open_clip model; reading it needs torch and open_clip: {TORCH_HINT}. "
            "Or pass an ONNX export: --model /path/to/export-folder or --model hf-hub:ORG/REPO."
        )
    return resolve(spec).identity


def _direct_export(spec: ModelSpec) -> ExportInfo | None:
    """The export ``spec`` names itself (a folder or a hub export repo), else None."""
    path = _export_path(spec)
    if path is not None:
        return read_export(path)  # named by its absolute path, which reopens it from anywhere
    model = spec.model.strip()
    if model.startswith(HUB) and is_hub_export(model[len(HUB) :]):
        return read_export(hub_export_folder(model[len(HUB) :]), named_as=model)
    return None


def _export_path(spec: ModelSpec) -> Path | None:
    model = spec.model.strip()
    if model.startswith(HUB):
        return None
    path = Path(model[len(LOCAL_DIR) :] if model.startswith(LOCAL_DIR) else model).expanduser()
    if (os.sep in model or model.startswith((".", LOCAL_DIR)) or path.is_dir()) and is_export_folder(path):
        return path
    return None


def _is_folder_spec(spec: ModelSpec) -> bool:
    model = spec.model.strip()
    return model.startswith(LOCAL_DIR) or os.sep in model or model.startswith(".")


def _hub_table_export(spec: ModelSpec) -> ExportInfo:
    """A registered hub export of an open_clip tag, carrying that tag's identity (same weights)."""
    hub = get_hub_export(spec.model.strip(), spec.pretrained.strip())
    assert hub is not None  # checked by the caller
    info = read_export(hub_export_folder(hub.repo), named_as=f"{HUB}{hub.repo}")
    if info.identity.embed_dim != hub.embed_dim:
        raise ExportError(
            f"hf-hub:{hub.repo} makes {info.identity.embed_dim}-wide vectors, not {hub.embed_dim} like "
            f"{hub.arch}/{hub.pretrained}; it is not that model's export."
        )
    identity = ModelIdentity(hub.arch, hub.pretrained, "", hub.embed_dim, hub.arch, hub.pretrained)
    return replace(info, identity=identity)


def _label(spec: ModelSpec) -> str:
    return f"{spec.model}/{spec.pretrained}" if spec.pretrained else spec.model
