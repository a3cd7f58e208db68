"""File headers for the GPU decode path, read in worker processes when that pays.

Before a JPEG goes to the GPU decoder its bytes are hashed and its header and EXIF are
parsed (size, orientation, capture time, camera, caption). Hashing releases the GIL;
Pillow's header parsing does not. At thousands of files a second, reader threads spend
most of the main process's one GIL on this, and the thread that feeds the GPU waits
for it. :class:`HeaderReaders` moves the work into worker processes that never import
torch: each reads a file, hashes it and parses its header, and returns a small
:class:`Header`. The main process then reads the file again (from the page cache, with
the GIL released) for the GPU, and uses the worker's hash and metadata only when the
size and modification time it sees are the ones the worker saw; otherwise it hashes and
parses its own copy (:func:`retrieval.images.gpu_decode.probe_header`), as it does for every file
the GPU cannot decode.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import io
import logging
import os
import pickle
import queue
import signal
import subprocess
import sys
import threading
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from index.files import open_regular
from index.records import ImageMeta
from retrieval.errors import ImageDecodeError
from retrieval.images.decode import DecodeConfig
from retrieval.images.exif import read_meta

__all__ = [
    "MAX_GPU_PIXELS",
    "Header",
    "HeaderReaders",
    "jpeg_header",
    "read_checked",
    "read_header",
    "read_headers",
    "serve",
]

log = logging.getLogger(__name__)

_GPU_MODES = frozenset({"RGB", "L"})  # nvJPEG's RGB output is right for these; CMYK/YCCK go to the CPU
_GPU_FORMATS = frozenset({"JPEG", "MPO"})  # MPO: a JPEG followed by more JPEGs; nvJPEG reads the first
MAX_GPU_PIXELS = 50_000_000  # larger images take the CPU path (JPEG draft decoding keeps memory small)
# warnings.catch_warnings swaps a process-wide filter list: two threads inside it at once can
# leave "ignore" in place for good. Header parsing holds the GIL anyway, so a lock costs nothing.
_WARNINGS = threading.Lock()


@dataclass(frozen=True)
class Header:
    """What a worker learnt from one file."""

    content_hash: str = ""  # blake2b-128 hex of the bytes it read
    size: int = -1  # bytes it read
    mtime_ns: int = -1  # modification time of the file it read (fstat of the open file)
    dev: int = -1  # device of the file it read (fstat): the reader checks it reads the same file
    ino: int = -1  # inode of the file it read (fstat)
    meta: ImageMeta | None = None  # set for JPEGs the GPU can decode; None: the CPU decoder judges the file
    orientation: int | None = None  # EXIF orientation to apply after decoding
    error: str = ""  # the file could not be read ("cannot read file: ...")


def jpeg_header(data: bytes, config: DecodeConfig) -> tuple[ImageMeta, int | None] | None:
    """``(meta, orientation)`` of a JPEG the GPU can decode, without decoding pixels; None sends it to the CPU."""
    if data[:3] != b"\xff\xd8\xff":
        return None
    # A JPEG that does not end with its EOI marker is truncated (or carries a trailer):
    # Pillow decides what that means, so such files keep the CPU path's verdict.
    if data[-2:] != b"\xff\xd9" and bytes(data[-64:]).rstrip(b"\x00")[-2:] != b"\xff\xd9":
        return None
    from PIL import Image

    with _WARNINGS, warnings.catch_warnings():
        warnings.simplefilter("ignore")  # Pillow's decompression-bomb warning: our own limit applies
        with Image.open(io.BytesIO(data)) as img:
            width, height = img.size
            if (
                img.format not in _GPU_FORMATS
                or img.mode not in _GPU_MODES
                or img.info.get("progressive")
                or img.info.get("progression")
                or width * height > min(config.max_pixels, MAX_GPU_PIXELS)
            ):
                return None
            meta = read_meta(img, (width, height), "JPEG")
    return meta, meta.orientation


def read_header(path: str, config: DecodeConfig) -> Header:
    """Read ``path``, hash its bytes and parse its JPEG header; never raises for a bad file."""
    try:
        data, status = read_checked(path, config)
    except ImageDecodeError as exc:
        return Header(error=str(exc))
    content_hash = hashlib.blake2b(data, digest_size=16).hexdigest()
    seen = Header(content_hash, len(data), status.st_mtime_ns, dev=status.st_dev, ino=status.st_ino)
    try:
        header = jpeg_header(data, config)
    except Exception:  # noqa: BLE001  (anything odd in the header: let the CPU decoder judge)
        header = None
    if header is None:
        return seen
    return dataclasses.replace(seen, meta=header[0], orientation=header[1])


def read_checked(path: str, config: DecodeConfig) -> tuple[bytes, os.stat_result]:
    """The bytes of the regular file at ``path`` (at most ``config.max_file_bytes``) and its fstat.

    Never blocks on a FIFO and never reads a device (see :func:`index.files.open_regular`).

    Raises:
        ImageDecodeError: it cannot be read, is not a regular file, or is too large.
    """
    try:
        handle, status = open_regular(path)
    except OSError as exc:
        raise ImageDecodeError(f"cannot read file: {exc}") from exc
    with handle:
        if status.st_size > config.max_file_bytes:
            raise ImageDecodeError(
                f"file is {status.st_size / 2**20:,.0f} MiB, over the {config.max_file_bytes / 2**20:g} MiB limit "
                "(DecodeConfig.max_file_bytes); not read"
            )
        try:
            # bytes, not bytearray: BytesIO and torch.frombuffer then share them, no copy under the GIL
            data = handle.read(config.max_file_bytes + 1)
        except OSError as exc:
            raise ImageDecodeError(f"cannot read file: {exc}") from exc
    if len(data) > config.max_file_bytes:
        raise ImageDecodeError("the file grew past DecodeConfig.max_file_bytes while it was read; not read")
    return data, status


def read_headers(paths: Sequence[str], config: DecodeConfig) -> list[Header]:
    """:func:`read_header` of each path, in order (one task for a worker process)."""
    return [read_header(path, config) for path in paths]


class HeaderReaders:
    """Worker processes that run :func:`read_headers`; :meth:`read` is called from reader threads.

    Workers are plain ``python -c`` subprocesses talking pickle over pipes, not a
    multiprocessing pool: spawning through multiprocessing re-runs the caller's main
    script in every worker, which breaks (or repeats work in) scripts without an
    ``if __name__ == "__main__"`` guard. A worker that dies is replaced by reading in
    the calling thread, so a run never fails for it. Use as a context manager.
    """

    def __init__(self, processes: int, config: DecodeConfig) -> None:
        self.config = config
        root = str(Path(__file__).resolve().parents[1])  # where `retrieval` and `index` live
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in (root, os.environ.get("PYTHONPATH", "")) if p)}
        self._idle: queue.Queue[subprocess.Popen] = queue.Queue()
        self._all: list[subprocess.Popen] = []
        self._alive = 0
        self._lock = threading.Lock()
        for _ in range(max(1, processes)):
            worker = subprocess.Popen(
                [sys.executable, "-c", _WORKER], stdin=subprocess.PIPE, stdout=subprocess.PIPE, env=env
            )
            self._all.append(worker)
            self._idle.put(worker)
            self._alive += 1

    def read(self, paths: Sequence[str]) -> list[Header]:
        """Headers of ``paths``, in order, read by the next idle worker (blocks until one is free)."""
        while True:
            with self._lock:
                if not self._alive:
                    return read_headers(paths, self.config)  # every worker is gone: read here
            try:
                worker = self._idle.get(timeout=0.2)
                break
            except queue.Empty:
                continue
        stdin, stdout = worker.stdin, worker.stdout
        assert stdin is not None and stdout is not None  # started with both pipes
        try:
            pickle.dump((list(paths), self.config), stdin)
            stdin.flush()
            headers = pickle.load(stdout)  # noqa: S301 (our own worker)
        except (OSError, ValueError, EOFError, pickle.UnpicklingError):  # ValueError: pipe closed by close()
            worker.kill()  # gone or out of step: the others (or this thread) do its share
            log.warning(
                "a header worker process stopped (exit code %s); its share is read in this process", worker.poll()
            )
            with self._lock:
                self._alive -= 1
            return read_headers(paths, self.config)
        self._idle.put(worker)
        return headers

    def close(self) -> None:
        for worker in self._all:
            with contextlib.suppress(OSError):
                if worker.stdin is not None:
                    worker.stdin.close()  # EOF: the worker exits
        for worker in self._all:
            try:
                worker.wait(timeout=10)
            except subprocess.TimeoutExpired:
                worker.kill()
                worker.wait()
            with contextlib.suppress(OSError):
                if worker.stdout is not None:
                    worker.stdout.close()

    def __enter__(self) -> HeaderReaders:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def serve() -> None:
    """A worker's loop: ``(paths, config)`` pickles in on stdin, header lists out; ends at EOF."""
    # Ctrl-C reaches the whole process group: the main process winds the workers down itself.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    requests, replies = sys.stdin.buffer, os.fdopen(os.dup(1), "wb")
    os.dup2(2, 1)  # anything a library prints goes to stderr, not into the replies
    while True:
        try:
            paths, config = pickle.load(requests)  # noqa: S301 (from the process that started us)
        except EOFError:
            return
        pickle.dump(read_headers(paths, config), replies)
        replies.flush()


_WORKER = "from retrieval.images.headers import serve; serve()"
