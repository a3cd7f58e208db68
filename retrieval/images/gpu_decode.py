"""Batched JPEG decoding and preprocessing on the GPU (nvJPEG through torchvision).

Reader threads read each file, hash its bytes and parse its header and EXIF (no pixel
decoding), or leave the hashing and parsing to worker processes (:mod:`retrieval.images.headers`,
:func:`probe_header`) where the main process's GIL is the limit; one decoder thread hands whole batches of JPEG bitstreams to
``torchvision.io.decode_jpeg(list, device="cuda")`` (the hardware JPEG engines on
A100/H100), applies the EXIF orientation, resizes with antialiasing, centre-crops and
normalises on the GPU exactly as the model's CPU preprocess does. Everything else (PNG,
progressive or CMYK JPEGs, files without an end marker, oversized images, a batch the GPU
refuses) goes through :mod:`retrieval.images.decode` per file, so broken files fail with the
same messages as on the CPU path.

The decode step is a parameter (``Preprocessor(decode=...)``), and on ``device="cpu"``
torchvision decodes with libjpeg-turbo, so all of this logic runs in CPU-only tests.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import os
import queue
import threading
import warnings
from collections import deque
from collections.abc import Callable, Generator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, replace

import numpy as np
import torch
import torch.nn.functional as F

from index.records import ImageMeta
from retrieval.errors import ImageDecodeError
from retrieval.images.decode import DecodeConfig, decode_bytes
from retrieval.images.headers import Header, jpeg_header, read_checked
from retrieval.images.phash import HASH_SIDE, hash_grey
from retrieval.images.raw import is_raw

__all__ = [
    "PixelSpec",
    "Preprocessor",
    "Probe",
    "each",
    "gpu_decode_available",
    "grey_squares",
    "iter_batches",
    "pixel_spec",
    "probe_file",
    "probe_header",
]

# The bitstreams handed to nvJPEG are read-only bytes (nvJPEG only reads them); a filter
# scoped to this module, because catch_warnings is not thread-safe.
warnings.filterwarnings("ignore", message="The given buffer is not writable", category=UserWarning, module=__name__)
_RESIZE_CHUNK = 64  # images per interpolate call: bounds the float copy of a batch of one size
_IDENTITY_STEPS = frozenset({"MaybeConvertMode", "MaybeToTensor", "ToTensor", "_convert_to_rgb", "ConvertImageDtype"})


@dataclass(frozen=True)
class PixelSpec:
    """The model's eval preprocess as numbers: resize, centre crop, normalise."""

    resize: tuple[int, ...]  # (s,): shorter side to s (aspect kept); (h, w): squash to exactly h x w
    crop: tuple[int, int] | None  # centre crop (h, w) after resizing; None: no crop
    mean: tuple[float, ...]  # per-channel mean subtracted from 0..1 pixels
    std: tuple[float, ...]  # per-channel divisor after the mean
    interpolation: str  # "bicubic" or "bilinear" (antialiased, as Pillow resizes)

    @property
    def out_size(self) -> tuple[int, int]:
        """(h, w) of the tensors this spec produces."""
        if self.crop is not None:
            return self.crop
        return (self.resize[0], self.resize[1]) if len(self.resize) == 2 else (self.resize[0], self.resize[0])

    def resized_size(self, h: int, w: int) -> tuple[int, int]:
        """(h, w) after the resize step, computed as torchvision's ``Resize`` does."""
        if len(self.resize) == 2:
            return self.resize[0], self.resize[1]
        short, long = (w, h) if w <= h else (h, w)
        new_short, new_long = self.resize[0], int(self.resize[0] * long / short)
        return (new_long, new_short) if w <= h else (new_short, new_long)


def pixel_spec(transform: object) -> PixelSpec | None:
    """Read a torchvision ``Compose`` (open_clip's eval preprocess) into a :class:`PixelSpec`.

    Returns None when the pipeline holds a step this module cannot reproduce exactly
    (open_clip's "longest" resize mode, ``max_size``, unknown transforms): such models
    keep the CPU preprocess.
    """
    steps = getattr(transform, "transforms", None)
    if not steps:
        return None
    resize, crop, mean, std, interpolation = None, None, None, None, "bicubic"
    for step in steps:
        name = getattr(step, "__name__", type(step).__name__)
        if name == "Resize" and resize is None and getattr(step, "max_size", None) is None:
            size = step.size
            resize = (int(size),) if isinstance(size, int) else tuple(int(s) for s in size)
            interpolation = str(getattr(step.interpolation, "value", step.interpolation))
        elif name == "CenterCrop" and resize is not None and crop is None:
            crop = (int(step.size[0]), int(step.size[-1]))
        elif name == "Normalize" and mean is None:
            mean, std = tuple(float(m) for m in step.mean), tuple(float(s) for s in step.std)
        elif name not in _IDENTITY_STEPS:
            return None
    if resize is None or mean is None or std is None or interpolation not in ("bicubic", "bilinear") or len(resize) > 2:
        return None
    return PixelSpec(resize, crop, mean, std, interpolation)


def gpu_decode_available(device: str) -> bool:
    """True when ``device`` is a CUDA device and torchvision can decode JPEGs on it."""
    if not device.startswith("cuda") or not torch.cuda.is_available():
        return False
    try:
        from torchvision.io import decode_jpeg  # noqa: F401
    except ImportError:
        return False
    return True


@dataclass(frozen=True)
class Probe:
    """One file as a reader thread leaves it: JPEG bytes for the batch decoder, or CPU pixels, or an error."""

    key: object  # the caller's handle for the file (ingest passes its FileStat)
    content_hash: str = ""  # blake2b-128 hex of the file's bytes
    meta: ImageMeta | None = None  # full-resolution size after orientation, format, EXIF fields
    jpeg: torch.Tensor | None = None  # uint8 (n,) bitstream for nvJPEG
    orientation: int | None = None  # EXIF orientation to apply to the decoded JPEG
    pixels: torch.Tensor | None = None  # (3, H, W) preprocessed on the CPU (not a GPU-lane JPEG)
    error: str = ""  # why the file could not be read; empty when it could
    status: os.stat_result | None = None  # fstat of the file read: which file (device, inode), its size and mtime


def probe_file(key: object, path: str, config: DecodeConfig, preprocess: Callable) -> Probe:
    """Read ``path`` once; JPEGs the GPU can decode come back as bytes, the rest decoded here.

    Never raises for a bad file: the reason is in ``Probe.error`` (the CPU path's words).
    """
    try:
        data, status = read_checked(path, config)
    except ImageDecodeError as exc:
        return Probe(key, error=str(exc))
    return dataclasses.replace(_probe_bytes(key, data, config, preprocess, path), status=status)


def probe_header(key: object, path: str, header: Header, config: DecodeConfig, preprocess: Callable) -> Probe:
    """:func:`probe_file` for a file a worker process has hashed and parsed (see :mod:`retrieval.images.headers`).

    The file is read again here; the worker's hash and metadata are used only when this
    read has the size and modification time the worker's had. Otherwise (the file changed
    in between) and for files the GPU cannot decode, this copy is hashed and judged here.
    """
    if header.error:
        return Probe(key, error=header.error)
    try:
        data, status = read_checked(path, config)
    except ImageDecodeError as exc:
        return Probe(key, error=str(exc))
    seen = (len(data), status.st_mtime_ns, status.st_dev, status.st_ino)
    if header.meta is None or seen != (header.size, header.mtime_ns, header.dev, header.ino):
        return dataclasses.replace(_probe_bytes(key, data, config, preprocess, path), status=status)
    jpeg = torch.frombuffer(data, dtype=torch.uint8)
    return Probe(key, header.content_hash, header.meta, jpeg, header.orientation, status=status)


def _probe_bytes(key: object, data: bytes, config: DecodeConfig, preprocess: Callable, path: str = "") -> Probe:
    content_hash = hashlib.blake2b(data, digest_size=16).hexdigest()  # releases the GIL
    try:
        header = None if is_raw(path) else jpeg_header(data, config)
    except Exception:  # noqa: BLE001  (anything odd in the header: let the CPU decoder judge)
        header = None
    if header is None:
        return cpu_probe(key, data, config, preprocess, content_hash, name=path)
    meta, orientation = header
    return Probe(key, content_hash, meta, torch.frombuffer(data, dtype=torch.uint8), orientation)


def cpu_probe(
    key: object, data: bytes, config: DecodeConfig, preprocess: Callable, content_hash: str = "", name: str = ""
) -> Probe:
    """Decode and preprocess ``data`` (the file ``name``, when known) on the CPU (the CPU ingest path's own steps)."""
    try:
        decoded = decode_bytes(data, config, name)
        return Probe(key, decoded.content_hash, decoded.meta, pixels=preprocess(decoded.image))
    except ImageDecodeError as exc:
        return Probe(key, content_hash, error=str(exc))
    except Exception as exc:  # noqa: BLE001  (a bad file must never stop the run; keep the reason)
        return Probe(key, content_hash, error=f"{exc.__class__.__name__}: {exc}")


def _torchvision_decode(jpegs: list[torch.Tensor], device: str) -> list[torch.Tensor]:
    """Decode a batch of JPEG bitstreams to ``(3, H, W)`` uint8 RGB on ``device``."""
    from torchvision.io import ImageReadMode, decode_jpeg

    return decode_jpeg(jpegs, mode=ImageReadMode.RGB, device=device)


def orient(image: torch.Tensor, orientation: int | None) -> torch.Tensor:
    """Apply an EXIF orientation to ``(C, H, W)`` as Pillow's ``exif_transpose`` does."""
    if orientation == 2:
        return image.flip(-1)
    if orientation == 3:
        return image.flip(-2, -1)
    if orientation == 4:
        return image.flip(-2)
    if orientation == 5:
        return image.transpose(-2, -1)
    if orientation == 6:
        return torch.rot90(image, -1, dims=(-2, -1))
    if orientation == 7:
        return image.transpose(-2, -1).flip(-2, -1)
    if orientation == 8:
        return torch.rot90(image, 1, dims=(-2, -1))
    return image


class Preprocessor:
    """Decode a batch of probes on ``device`` and preprocess them into one pixel tensor.

    Args:
        spec: the model's preprocess (see :func:`pixel_spec`).
        device: where to decode and preprocess ("cuda", "cuda:N" or "cpu").
        config: decoding limits for the per-file CPU fallback.
        preprocess: the model's CPU preprocess (PIL image -> tensor), for the fallback.
        decode: the batch decoder, ``(jpegs, device) -> list of (3, H, W) uint8``;
            torchvision's by default (tests swap it to simulate failures).
    """

    def __init__(
        self, spec: PixelSpec, device: str, config: DecodeConfig, preprocess: Callable, decode: Callable | None = None
    ) -> None:
        self.spec = spec
        self.device = torch.device(device)
        self.config = config
        self.preprocess = preprocess
        self._decode = decode or _torchvision_decode
        self._mean = torch.tensor(spec.mean, device=self.device).view(1, -1, 1, 1) * 255.0
        self._std = torch.tensor(spec.std, device=self.device).view(1, -1, 1, 1) * 255.0

    def __call__(self, probes: Sequence[Probe]) -> tuple[list[Probe], torch.Tensor]:
        """``(probes, pixels)``: probes with errors filled in for files that failed, and
        ``(len(probes), 3, h, w)`` float32 pixels on the device (rows of failed files unset)."""
        probes = list(probes)
        out = torch.empty((len(probes), 3, *self.spec.out_size), dtype=torch.float32, device=self.device)
        lane = [i for i, p in enumerate(probes) if p.jpeg is not None and not p.error]
        images = self._decode_lane(probes, lane)  # row -> (3, H, W) uint8, oriented
        by_size: dict[tuple[int, int], list[int]] = {}
        for row, image in images.items():
            by_size.setdefault((int(image.shape[-2]), int(image.shape[-1])), []).append(row)
        for rows in by_size.values():
            for start in range(0, len(rows), _RESIZE_CHUNK):
                chunk = rows[start : start + _RESIZE_CHUNK]
                batch = torch.stack([images[r] for r in chunk])
                out[torch.tensor(chunk, device=self.device)] = self._pixels(batch)
                if self.config.perceptual_hash:
                    for row, grey in zip(chunk, grey_squares(batch)):
                        probes[row] = _with_phash(probes[row], hash_grey(grey))
        for i, probe in enumerate(probes):
            if probe.pixels is not None and not probe.error:
                out[i].copy_(probe.pixels.to(self.device, non_blocking=True))
        return probes, out

    def _decode_lane(self, probes: list[Probe], lane: list[int]) -> dict[int, torch.Tensor]:
        """Decode the GPU-lane rows in one batch; a refused batch is retried file by file."""
        if not lane:
            return {}
        jpegs = {i: jpeg for i in lane if (jpeg := probes[i].jpeg) is not None}  # every lane row has one
        try:
            decoded = dict(zip(lane, self._decode([jpegs[i] for i in lane], str(self.device))))
        except Exception:  # noqa: BLE001  (one bad bitstream fails the batch: find it below)
            decoded = {}
            for i in lane:
                try:
                    decoded[i] = self._decode([jpegs[i]], str(self.device))[0]
                except Exception:  # noqa: BLE001
                    probe = probes[i]  # the CPU decoder gives pixels, or the error in its words
                    probes[i] = cpu_probe(
                        probe.key, bytes(jpegs[i].numpy()), self.config, self.preprocess, probe.content_hash
                    )
        return {i: orient(image, probes[i].orientation) for i, image in decoded.items()}

    def _pixels(self, images: torch.Tensor) -> torch.Tensor:
        """``(B, 3, H, W)`` uint8 of one size -> ``(B, 3, h, w)`` normalised float32."""
        spec = self.spec
        h, w = int(images.shape[-2]), int(images.shape[-1])
        x = images.float()
        size = spec.resized_size(h, w)
        if size != (h, w):  # torchvision's Resize leaves an image of the target size untouched
            x = F.interpolate(x, size=size, mode=spec.interpolation, antialias=True, align_corners=False)
            x = x.round_().clamp_(0.0, 255.0)  # Pillow resizes 8-bit images to 8-bit
        if spec.crop is not None:
            x = _center_crop(x, spec.crop)
        return (x - self._mean) / self._std


def grey_squares(images: torch.Tensor) -> np.ndarray:
    """``(B, 3, H, W)`` uint8 -> ``(B, 32, 32)`` float64 grey squares on the CPU, made as the CPU
    path makes them for :func:`~retrieval.images.phash.perceptual_hash`: an area average to 8-bit
    RGB, then Pillow's integer luma (ITU-R 601-2)."""
    small = F.interpolate(images.float(), size=(HASH_SIDE, HASH_SIDE), mode="area").round_()
    r, g, b = small.double().unbind(1)  # each (B, 32, 32); float64 keeps the integer sums exact
    grey = torch.floor((r * 19595 + g * 38470 + b * 7471 + 32768) / 65536)
    return grey.cpu().numpy()


def _with_phash(probe: Probe, phash: int) -> Probe:
    return replace(probe, meta=replace(probe.meta, phash=phash)) if probe.meta is not None else probe


def _center_crop(x: torch.Tensor, crop: tuple[int, int]) -> torch.Tensor:
    """torchvision's ``center_crop``: zero-pad when smaller, then take the centre."""
    ch, cw = crop
    h, w = int(x.shape[-2]), int(x.shape[-1])
    if ch > h or cw > w:
        pad_t, pad_l = (ch - h) // 2 if ch > h else 0, (cw - w) // 2 if cw > w else 0
        pad_b, pad_r = (ch - h + 1) // 2 if ch > h else 0, (cw - w + 1) // 2 if cw > w else 0
        x = F.pad(x, (pad_l, pad_r, pad_t, pad_b), value=0.0)
        h, w = int(x.shape[-2]), int(x.shape[-1])
        if h == ch and w == cw:
            return x
    top, left = int(round((h - ch) / 2.0)), int(round((w - cw) / 2.0))
    return x[..., top : top + ch, left : left + cw]


_END = object()


def each(probe: Callable[[object, str], Probe]) -> Callable[[Sequence[tuple[object, str]]], list[Probe]]:
    """A chunk prober for :func:`iter_batches` from a per-file one (e.g. :func:`probe_file`)."""
    return lambda chunk: [probe(key, path) for key, path in chunk]


def iter_batches(
    items: Sequence[tuple[object, str]],
    probe: Callable[[Sequence[tuple[object, str]]], list[Probe]],
    preprocessor: Preprocessor,
    batch: int,
    workers: int,
    prefetch: int = 2,
    chunk: int = 1,
) -> Generator[tuple[list[Probe], torch.Tensor], None, None]:
    """Probe ``(key, path)`` items in ``workers`` threads and preprocess them ``batch`` at a time.

    ``probe`` turns a chunk of up to ``chunk`` items into their probes, in order (see
    :func:`each`). Yields what :class:`Preprocessor` returns, batch by batch in input order.
    File reading, batch decoding and the caller's own work (encoding, committing) overlap:
    the batch decoder runs in its own thread, on its own CUDA stream, up to ``prefetch``
    batches ahead.
    """
    results: queue.Queue = queue.Queue(maxsize=max(1, prefetch))
    stop = threading.Event()
    chunk = max(1, chunk)

    def put(value: object) -> bool:
        while not stop.is_set():
            try:
                results.put(value, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def produce() -> None:
        try:
            stream = torch.cuda.Stream(preprocessor.device) if preprocessor.device.type == "cuda" else None
            with ThreadPoolExecutor(max(1, workers), thread_name_prefix="xmr-read") as pool:
                pending: deque[Future[list[Probe]]] = deque()
                ready: list[Probe] = []
                todo = iter(range(0, len(items), chunk))
                window = batch * (max(1, prefetch) + 1)  # files the readers keep ahead
                while not stop.is_set():
                    for start in todo:
                        pending.append(pool.submit(probe, items[start : start + chunk]))
                        if len(pending) * chunk >= window:
                            break
                    while len(ready) < batch and pending:
                        ready += pending.popleft().result()
                    if not ready:
                        break
                    probes, ready = ready[:batch], ready[batch:]
                    with torch.cuda.stream(stream) if stream is not None else contextlib.nullcontext():
                        done = preprocessor(probes)
                    if stream is not None:
                        stream.synchronize()  # the caller's stream may use the pixels at once
                    if not put(done):
                        break
                for future in pending:
                    future.cancel()
        except BaseException as exc:  # noqa: BLE001  (re-raised in the caller's thread)
            put(exc)
        finally:
            put(_END)

    thread = threading.Thread(target=produce, name="xmr-gpu-decode", daemon=True)
    thread.start()
    try:
        while True:
            value = results.get()
            if value is _END:
                break
            if isinstance(value, BaseException):
                raise value
            yield value
    finally:
        stop.set()
        thread.join()
