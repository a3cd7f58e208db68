"""The encoder on onnxruntime: an export's two towers, with torch-free tokenizer and preprocessing.

Each tower's session is created on first use, so a text query loads only the text tower
(and its tokenizer), and indexing images never loads the tokenizer. Sessions run on the
CPU, or on CUDA, CoreML or OpenVINO when the installed onnxruntime has that provider.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from index.deps import attempt_import
from retrieval.errors import DeviceError, ExportError
from retrieval.models.exports import ExportInfo
from retrieval.models.fast_load import fast_tower, forget
from retrieval.models.preprocess import preprocess_image
from retrieval.models.tokenizer import TextTokenizer

if TYPE_CHECKING:
    from PIL import Image

log = logging.getLogger(__name__)

ONNXRUNTIME_HINT = "onnxruntime is not installed: pip install onnxruntime (or onnxruntime-gpu on CUDA machines)"
TEXT_BATCH = 256  # texts per session run; long caption lists run in chunks of similar length
# Accelerators in the order "auto" tries them, by the device name xmr reports.
ACCELERATORS = (
    ("cuda", "CUDAExecutionProvider"),
    ("coreml", "CoreMLExecutionProvider"),
    ("openvino", "OpenVINOExecutionProvider"),
)
CPU = "CPUExecutionProvider"


def pick_providers(device: str = "auto") -> tuple[str, list[Any]]:
    """The device name and onnxruntime providers for ``device``.

    ``auto`` takes the first accelerator the installed onnxruntime has (CUDA, CoreML,
    OpenVINO), else the CPU; ``cuda[:N]``, ``mps``/``coreml`` and ``openvino`` ask for one.

    Raises:
        DeviceError: the device is unknown, or this onnxruntime has no provider for it.
    """
    ort = attempt_import("onnxruntime", ONNXRUNTIME_HINT)
    available = set(ort.get_available_providers())
    if device == "cpu":
        return "cpu", [CPU]
    if device == "auto":
        for name, provider in ACCELERATORS:
            if provider in available:
                return name, [provider, CPU]
        return "cpu", [CPU]
    name = "coreml" if device == "mps" else device.partition(":")[0]
    if name not in dict(ACCELERATORS):
        raise DeviceError(f"device must be auto, cpu, cuda[:N], mps/coreml or openvino, not {device!r}")
    provider = dict(ACCELERATORS)[name]
    if provider not in available:
        raise DeviceError(
            f"the installed onnxruntime has no {provider} (it has {', '.join(sorted(available))}); "
            f"use --device cpu, install the onnxruntime build for {name}, or use --runtime torch."
        )
    if name == "cuda":
        index = device.partition(":")[2]
        return device, [(provider, {"device_id": int(index) if index.isdigit() else 0}), CPU]
    return name, [provider, CPU]


class OnnxEncoder:
    """An export on onnxruntime; follows the encoder contract of :mod:`retrieval.models.encoder`.

    ``encode_*`` may be called from several threads at once (onnxruntime sessions are
    thread-safe); sessions are created once, under a lock.
    """

    runtime = "onnx"

    def __init__(self, export: ExportInfo, device: str = "auto", threads: int = 0, prepack: bool = True) -> None:
        self.export = export
        self.threads = threads  # onnxruntime threads per session; 0: its default
        # False: weights are used where they lie (mapped), not re-laid out for speed: a session
        # opens ~2x sooner and runs slower (what a one-shot search wants; see Library.open).
        self.prepack = prepack
        self.identity = export.identity
        self.dim = export.identity.embed_dim
        self.device, self._providers = pick_providers(device)
        self.image_size = export.preprocess.size[0]
        self._lock = threading.Lock()
        self._sessions: dict[str, Any] = {}
        self._tokenizer: TextTokenizer | None = None
        self._tokenizer_lock = threading.Lock()  # apart from _lock: the tokenizer loads while a session opens
        self._tokenizer_loader: threading.Thread | None = None

    # ---- images ----

    def preprocess(self, image: Image.Image) -> np.ndarray:
        """RGB PIL image -> ``(3, H, W)`` float32 pixels, as open_clip's preprocess makes them."""
        return preprocess_image(image, self.export.preprocess)

    def stack(self, pixels: Sequence[np.ndarray]) -> np.ndarray:
        """Preprocessed images -> one ``(B, 3, H, W)`` float32 batch."""
        return np.ascontiguousarray(np.stack(list(pixels)), dtype=np.float32)

    def encode_images(self, pixels: np.ndarray) -> np.ndarray:
        """``(B, 3, H, W)`` pixels -> ``(B, dim)`` float32 unit vectors."""
        session = self._session("image")
        return self._run(session, np.asarray(pixels))

    # ---- texts ----

    @property
    def tokenizer(self) -> TextTokenizer:
        """The export's tokenizer (loaded on first use)."""
        loader = self._tokenizer_loader
        if loader is not None:
            loader.join()  # its failure, if any, is raised again by the load below
        return self._read_tokenizer()

    def _read_tokenizer(self) -> TextTokenizer:
        with self._tokenizer_lock:
            if self._tokenizer is None:
                self._tokenizer = TextTokenizer.from_file(
                    self.export.folder / "textual" / "tokenizer.json", self.export.tokenizer
                )
            return self._tokenizer

    def encode_texts(self, texts: Sequence[str]) -> np.ndarray:
        """Texts -> ``(N, dim)`` float32 unit vectors."""
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        if "text" not in self._sessions:
            self._load_tokenizer_aside()
        session = self._session("text")
        ids = self.tokenizer(list(texts))  # (N, T) int64
        if not self.export.text_trim:
            return self._run(session, ids)
        # The end-of-text token has the largest id (open_clip pools there too); nothing after it
        # in a causal tower changes the output, so each chunk stops at its longest text.
        lengths = ids.argmax(axis=1) + 1  # (N,)
        order = np.argsort(lengths, kind="stable")
        out = np.empty((len(ids), self.dim), dtype=np.float32)
        for start in range(0, len(order), TEXT_BATCH):
            rows = order[start : start + TEXT_BATCH]
            out[rows] = self._run(session, ids[rows, : int(lengths[rows].max())])
        return out

    def _load_tokenizer_aside(self) -> None:
        """Start loading the tokenizer in a thread, once: tokenizers parses its file with the GIL
        released, while onnxruntime holds it to open a session, so a first text query pays for
        the longer of the two, not both (about 0.1 s each for CLIP's BPE and a ViT-B-32 text tower)."""
        with self._tokenizer_lock:
            if self._tokenizer is not None or self._tokenizer_loader is not None:
                return
            import tokenizers  # noqa: F401  (imported here: an import in the thread would hold the GIL)

            self._tokenizer_loader = threading.Thread(target=self._load_tokenizer, name="xmr-tokenizer", daemon=True)
            self._tokenizer_loader.start()

    def _load_tokenizer(self) -> None:
        try:
            self._read_tokenizer()
        except Exception as exc:  # noqa: BLE001  (said again, and raised, where the tokenizer is used)
            log.debug("loading the tokenizer beside the session failed: %s", exc)

    # ---- sessions ----

    def prepare(self, tower: str) -> None:
        """Write the fast-load copy of ``tower`` ("text" or "image") if it has none yet, without
        opening a session (see :mod:`retrieval.models.fast_load`; never fails: a copy saves time only)."""
        ort = attempt_import("onnxruntime", ONNXRUNTIME_HINT)
        fast_tower(self.export.text_path if tower == "text" else self.export.image_path, ort)

    def _session(self, tower: str) -> Any:
        with self._lock:
            if tower not in self._sessions:
                self._sessions[tower] = self._open(tower)
            return self._sessions[tower]

    def _open(self, tower: str) -> Any:
        ort = attempt_import("onnxruntime", ONNXRUNTIME_HINT)
        path = self.export.text_path if tower == "text" else self.export.image_path
        if not path.is_file():
            raise ExportError(f"the export in {self.export.folder} has no {tower} tower ({path} is missing).")
        providers = self._providers
        if tower == "text" and self.device == "coreml":
            providers = [CPU]  # CoreML compiles the text tower poorly; one query is fast on the CPU
        fast = fast_tower(path, ort)
        try:
            session = self._load(ort, fast, providers)
        except ExportError:
            if fast == path:
                raise
            log.warning("the fast-load copy %s does not open; removed, opening %s as it is", fast, path)
            forget(fast)
            session = self._load(ort, path, providers)
        inputs = session.get_inputs()
        if len(inputs) != 1:
            raise ExportError(
                f"{path} takes {len(inputs)} inputs ({', '.join(i.name for i in inputs)}); xmr runs open_clip "
                "exports, whose towers take one (token ids or pixels)."
            )
        return session

    def _load(self, ort: Any, path: Path, providers: list[Any]) -> Any:
        error: Exception | None = None
        for level in (ort.GraphOptimizationLevel.ORT_ENABLE_ALL, ort.GraphOptimizationLevel.ORT_ENABLE_BASIC):
            options = ort.SessionOptions()
            options.graph_optimization_level = level
            options.log_severity_level = 3  # warnings about unused initializers etc. are not the user's
            options.intra_op_num_threads = self.threads
            if not self.prepack:
                options.add_session_config_entry("session.disable_prepacking", "1")
            try:
                return ort.InferenceSession(str(path), options, providers=providers)
            except Exception as exc:  # noqa: BLE001 (fp16 graphs failed at ORT_ENABLE_ALL in 1.32; BASIC works)
                log.warning(
                    "onnxruntime could not optimise %s fully (%s); retrying with basic optimisations", path, exc
                )
                error = exc
        raise ExportError(f"onnxruntime cannot load {path}: {error}. Export the model again.") from error

    def _run(self, session: Any, batch: np.ndarray) -> np.ndarray:
        meta = session.get_inputs()[0]
        dtype = {"tensor(int32)": np.int32, "tensor(int64)": np.int64, "tensor(float16)": np.float16}.get(
            meta.type, np.float32
        )
        batch = np.ascontiguousarray(batch, dtype=dtype)
        fixed = meta.shape[0] if isinstance(meta.shape[0], int) and meta.shape[0] > 0 else 0
        step = fixed or max(1, len(batch))
        parts = [session.run(None, {meta.name: batch[i : i + step]})[0] for i in range(0, len(batch), step)]
        return normalized_rows(np.concatenate(parts) if parts else np.zeros((0, self.dim), np.float32))


def normalized_rows(array: np.ndarray) -> np.ndarray:
    """``(B, D)`` features -> float32 C-contiguous unit rows (renormalised: fp16 towers drift)."""
    array = np.asarray(array, dtype=np.float32)
    norms = np.linalg.norm(array, axis=1, keepdims=True)
    return np.ascontiguousarray(array / np.maximum(norms, 1e-12), dtype=np.float32)
