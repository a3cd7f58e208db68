"""Reading the text in photos: PP-OCRv4 detection and recognition through rapidocr-onnxruntime.

The ONNX models ship inside the ``rapidocr-onnxruntime`` wheel (extra ``[ocr]``), so this
works offline. An :class:`OcrEngine` owns one detector, classifier and recognizer session;
rapidocr keeps per-call state on its objects, so an engine serves one call at a time (a
lock makes a shared one safe) and an index run gives each OCR worker thread its own
(:func:`thread_engine`). onnxruntime releases the GIL while it runs, so threads work in
parallel; each engine uses ``OcrConfig.threads`` intra-op threads so that OCR and the
image encoder share a small machine's cores instead of each taking all of them.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from importlib.metadata import PackageNotFoundError, version

import numpy as np

from index.deps import attempt_import

__all__ = ["OCR_HINT", "OcrConfig", "OcrEngine", "OcrLine", "engine_name", "thread_engine"]

OCR_HINT = "reading text in photos (--ocr) needs rapidocr-onnxruntime: pip install 'xmr[ocr]'"


@dataclass(frozen=True)
class OcrConfig:
    """How text is read from photos."""

    workers: int = 0  # OCR threads beside the encoder; 0: half the CPU cores, at least 1
    threads: int = 1  # onnxruntime intra-op threads per OCR engine
    max_side: int = 1600  # the image's longer side is scaled down to this before detection (pixels)
    det_side: int = 736  # the detector scales the shorter side up to at least this (rapidocr's default)
    min_confidence: float = 0.5  # recognised lines scoring below this are dropped

    def worker_count(self) -> int:
        """OCR worker threads for this machine."""
        import os

        return self.workers if self.workers > 0 else max(1, (os.cpu_count() or 1) // 2)


@dataclass(frozen=True)
class OcrLine:
    """One line of text read from an image."""

    text: str  # as recognised
    confidence: float  # recogniser's score, 0..1
    box: tuple[
        float, ...
    ]  # 8 numbers: x, y of the corners (top-left, top-right, bottom-right, bottom-left), fractions of width and height


def engine_name() -> str:
    """What reads the text, stored with each result (a later engine may read again)."""
    try:
        return f"rapidocr-onnxruntime {version('rapidocr-onnxruntime')} PP-OCRv4"
    except PackageNotFoundError:
        return "rapidocr-onnxruntime PP-OCRv4"


class OcrEngine:
    """One set of OCR sessions; :meth:`read` turns an RGB image into lines of text."""

    def __init__(self, config: OcrConfig = OcrConfig()) -> None:
        """Load the detector, orientation classifier and recogniser (about 16 MB of ONNX).

        Raises:
            MissingDependencyError: rapidocr-onnxruntime is not installed (names the extra).
        """
        module = attempt_import("rapidocr_onnxruntime", OCR_HINT)
        self.config = config
        threads = max(1, config.threads)
        self._ocr = module.RapidOCR(
            intra_op_num_threads=threads,
            inter_op_num_threads=1,
            det_limit_side_len=config.det_side,
            text_score=config.min_confidence,
            max_side_len=max(config.max_side, config.det_side),
        )
        self._lock = threading.Lock()

    def read(self, image: np.ndarray, bgr: bool = False) -> list[OcrLine]:
        """The lines of text in ``image`` ``(H, W, 3)`` uint8 (RGB, or BGR with ``bgr``), top to bottom.

        Raises:
            ValueError: not an ``(H, W, 3)`` uint8 array.
        """
        if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
            raise ValueError(f"OCR takes an (H, W, 3) uint8 image, not {image.dtype} {image.shape}")
        height, width = image.shape[:2]
        small, scale = _fit(image, self.config.max_side)
        pixels = np.ascontiguousarray(small if bgr else small[:, :, ::-1])  # rapidocr reads arrays as BGR
        with self._lock:
            found, _ = self._ocr(pixels)
        lines = []
        for points, text, score in found or ():
            corners = np.asarray(points, dtype=np.float64).reshape(4, 2) * scale / (width, height)
            box = tuple(round(float(v), 5) for v in np.clip(corners, 0.0, 1.0).reshape(-1))
            if str(text).strip():
                lines.append(OcrLine(str(text).strip(), round(float(score), 4), box))
        return lines


def _fit(image: np.ndarray, max_side: int) -> tuple[np.ndarray, float]:
    """``image`` scaled so its longer side is at most ``max_side``, and the factor back."""
    height, width = image.shape[:2]
    longest = max(height, width)
    if max_side <= 0 or longest <= max_side:
        return image, 1.0
    from PIL import Image

    factor = max_side / longest
    size = (max(1, round(width * factor)), max(1, round(height * factor)))
    return np.asarray(Image.fromarray(image).resize(size, Image.Resampling.BILINEAR)), longest / max_side


_local = threading.local()


def thread_engine(config: OcrConfig) -> OcrEngine:
    """This thread's engine for ``config``, made on first use (one per worker thread)."""
    engine = getattr(_local, "engine", None)
    if engine is None or engine.config != config:
        engine = _local.engine = OcrEngine(config)
    return engine
