"""The dual encoder: open_clip images and texts into one L2-normalised space (torch lives here).

``Encoder`` is the protocol the rest of the code depends on; ``ClipEncoder`` is the
open_clip implementation, built by :func:`load_encoder`. Tests may pass any object that
follows the protocol.
"""

from __future__ import annotations

import contextlib
import json
import threading
from collections.abc import Callable, Sequence
from types import ModuleType
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np

from index.errors import MissingDependencyError, XmrError
from index.manifest import ModelIdentity
from retrieval.errors import DeviceError, ModelNotFoundError
from retrieval.models.specs import ModelSpec, ResolvedModel, resolve

if TYPE_CHECKING:
    import torch
    from PIL import Image

DEVICES = ("auto", "cpu", "cuda", "mps")


class Encoder(Protocol):
    identity: ModelIdentity
    dim: int
    device: str

    def preprocess(self, image: Image.Image) -> Any: ...  # one image's pixels, in the runtime's own type
    def stack(self, pixels: Sequence[Any]) -> Any: ...  # a batch of preprocessed images
    def encode_images(self, pixels: Any) -> np.ndarray: ...
    def encode_texts(self, texts: Sequence[str]) -> np.ndarray: ...


def pick_device(requested: str = "auto") -> str:
    """``requested`` if given, else the best available: cuda, then mps, then cpu."""
    import torch

    if requested not in DEVICES and not requested.startswith("cuda:"):
        raise DeviceError(f"device must be one of {', '.join(DEVICES)} (or cuda:N), not {requested!r}")
    if requested.startswith("cuda"):
        index = requested.partition(":")[2]
        if not torch.cuda.is_available() or (index.isdigit() and int(index) >= torch.cuda.device_count()):
            raise DeviceError(
                f"{requested} is not available here (torch sees {torch.cuda.device_count()} CUDA devices); use --device cpu or auto"
            )
        return requested
    if requested == "mps":
        if getattr(torch.backends, "mps", None) is None or not torch.backends.mps.is_available():
            raise DeviceError("mps (Apple GPU) is not available here; use --device cpu or auto")
        return requested
    if requested != "auto":
        return requested
    if torch.cuda.is_available():
        return "cuda"
    if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
        return "mps"
    return "cpu"


def _autocast_dtype(device: str) -> torch.dtype | None:
    import torch

    if device.startswith("cuda"):
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    if device == "mps":
        return torch.float16
    return None


class ClipEncoder:
    """An open_clip model in eval mode with its preprocess and tokenizer.

    ``encode_*`` may be called from several threads at once: inference mutates no state.
    """

    def __init__(self, model, preprocess: Callable, tokenizer: Callable, identity: ModelIdentity, device: str):  # noqa: ANN001
        self.model = model
        self._preprocess = preprocess
        self.tokenizer = tokenizer
        self.identity = identity
        self.dim = identity.embed_dim
        self.device = device
        self.autocast_dtype = _autocast_dtype(device)
        size = getattr(model.visual, "image_size", 224)
        self.image_size = int(size[0] if isinstance(size, (tuple, list)) else size)

    def preprocess(self, image: Image.Image) -> torch.Tensor:
        """RGB PIL image -> normalised ``(3, H, W)`` float tensor (thread-safe; runs in workers)."""
        return self._preprocess(image)

    def stack(self, pixels: Sequence[torch.Tensor]) -> torch.Tensor:
        """Preprocessed images -> one ``(B, 3, H, W)`` batch for :meth:`encode_images`."""
        import torch

        return torch.stack(list(pixels))

    @property
    def transform(self) -> Callable:
        """The CPU preprocess (open_clip's torchvision ``Compose``), read by :mod:`retrieval.images.gpu_decode`."""
        return self._preprocess

    def compile(self) -> None:
        """Compile the image tower with ``torch.compile`` (optional, GPU ingest): the first
        batch of each new shape compiles (tens of seconds), later ones run faster."""
        import torch

        self.model.visual = torch.compile(self.model.visual)

    def autocast(self) -> contextlib.AbstractContextManager[object]:
        """The mixed-precision context of this device (bf16/fp16 on GPUs; nothing on the CPU)."""
        import torch

        if self.autocast_dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(device_type=self.device.split(":")[0], dtype=self.autocast_dtype)

    def encode_images(self, pixels: torch.Tensor) -> np.ndarray:
        """``(B, 3, H, W)`` pixels -> ``(B, dim)`` float32 unit vectors."""
        import torch

        with torch.inference_mode(), self.autocast():
            features = self.model.encode_image(pixels.to(self.device, non_blocking=True), normalize=True)
        return unit_rows(features)

    def encode_texts(self, texts: Sequence[str]) -> np.ndarray:
        """Texts -> ``(N, dim)`` float32 unit vectors."""
        import torch

        tokens = self.tokenizer(list(texts)).to(self.device)
        with torch.inference_mode(), self.autocast():
            features = self.model.encode_text(tokens, normalize=True)
        return unit_rows(features)


def unit_rows(features: torch.Tensor) -> np.ndarray:
    """``(B, D)`` features of any dtype/device -> float32 C-contiguous unit rows on the CPU."""
    array = features.float().cpu().numpy()
    # Renormalise in float32: autocast halves can leave norms a few 1e-3 off one.
    norms = np.linalg.norm(array, axis=1, keepdims=True)
    return np.ascontiguousarray(array / np.maximum(norms, 1e-12), dtype=np.float32)


_LOAD_LOCK = threading.Lock()
TOKENIZER_HINT = "pip install 'xmr[transformers]'"


def _tokenizer(open_clip: ModuleType, resolved: ResolvedModel) -> Callable:
    """open_clip's tokenizer of the model; the multilingual and SigLIP families need transformers.

    Raises:
        MissingDependencyError: the tokenizer needs a package that is not installed.
    """
    try:
        return open_clip.get_tokenizer(resolved.arch)
    except ImportError as exc:  # open_clip's HFTokenizer imports transformers on creation
        raise MissingDependencyError(
            f"{resolved.identity.label()} uses a Hugging Face tokenizer, which needs transformers: {TOKENIZER_HINT} "
            f"(import failed: {exc})"
        ) from exc


def load_encoder(spec: ModelSpec | ResolvedModel, device: str = "auto") -> ClipEncoder:
    """Build the encoder ``spec`` names on ``device`` ("auto": cuda, then mps, then cpu).

    Raises:
        ModelNotFoundError, WeightsUnavailableError: see :func:`retrieval.models.specs.resolve`.
    """
    import open_clip
    import torch

    resolved = spec if isinstance(spec, ResolvedModel) else resolve(spec)
    device = pick_device(device)
    overrides = {key: json.loads(value) for key, value in resolved.preprocess}
    kwargs = {}
    for key, arg in (
        ("mean", "image_mean"),
        ("std", "image_std"),
        ("interpolation", "image_interpolation"),
        ("resize_mode", "image_resize_mode"),
    ):
        if key in overrides:
            kwargs[arg] = tuple(overrides[key]) if isinstance(overrides[key], list) else overrides[key]
    tokenizer = _tokenizer(open_clip, resolved)  # first: a missing dependency fails before the slow build
    with _LOAD_LOCK:
        if not resolved.checkpoint:
            torch.manual_seed(0)  # "random" weights are the same in every process
        try:
            model, _, preprocess = open_clip.create_model_and_transforms(
                resolved.arch,
                pretrained=None if resolved.arch.startswith("local-dir:") else (resolved.checkpoint or None),
                force_quick_gelu=bool(overrides.get("quick_gelu", False)),
                device=device,
                **kwargs,
            )
        except XmrError:
            raise
        except Exception as exc:  # noqa: BLE001 (a damaged or foreign checkpoint fails in many ways)
            raise ModelNotFoundError(
                f"cannot load {resolved.identity.label()}: {exc.__class__.__name__}: {str(exc).splitlines()[0] if str(exc) else ''}. "
                "Check that the weights file is an open_clip checkpoint of that architecture (not damaged "
                "or truncated), or pick another --model / --pretrained."
            ) from exc
    model.eval()
    return ClipEncoder(model, preprocess, tokenizer, resolved.identity, device)
