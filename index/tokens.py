"""The token cache: each image's encoder tokens on disk, so reranking needs no decoding.

Rows are float16 ``(T, W)`` token grids appended to one memory-mapped file
(``tokens.f16``); a second file (``tokens.keys``) holds each row's key, the blake2b-128
content hash the catalog records for the image. Keying by content rather than catalog id
is deliberate: tokens are a function of the bytes, so copies share a row, moved files
keep theirs, and a file whose bytes changed can never be served its old tokens. It also
lets rows be written *before* the catalog transaction that needs them, so a crash
between the two leaves an unused row, never an image without tokens.

Crash safety: data is appended and fsynced first, then the keys; the number of complete
keys is the number of rows, and a torn tail in either file is cut off on the next append.
``tokens.json`` (written once, atomically) carries the schema version, the grid shape and
the identity of the encoder that made the tokens.
"""

from __future__ import annotations

import json
import os
import threading
from pathlib import Path

import numpy as np

from index.atomic import atomic_write_bytes
from index.errors import CorruptFileError, LibraryVersionError, TokenCacheMismatchError

FORMAT = "xmr-token-cache"
# 1: first release (float16 rows keyed by 16-byte content hashes).
SCHEMA_VERSION = 1
KEY_BYTES = 16


class TokenCache:
    """Append-only, memory-mapped float16 token rows keyed by content hash (thread-safe reads)."""

    def __init__(self, root: Path, tokens: int, width: int, model: str) -> None:
        self.root = root
        self.shape = (tokens, width)
        self.model = model
        self._row_bytes = tokens * width * 2
        self._lock = threading.Lock()
        self._seen_size = -1
        self._rows: dict[bytes, int] = {}
        self._data: np.ndarray | None = None

    # ---- files ---------------------------------------------------------------------

    @property
    def header_path(self) -> Path:
        return self.root / "tokens.json"

    @property
    def data_path(self) -> Path:
        return self.root / "tokens.f16"

    @property
    def keys_path(self) -> Path:
        return self.root / "tokens.keys"

    @classmethod
    def exists(cls, root: Path) -> bool:
        """True when ``root`` holds a token cache."""
        return (root / "tokens.json").is_file()

    @classmethod
    def create(cls, root: Path, tokens: int, width: int, model: str) -> TokenCache:
        """Open the cache in ``root``, creating it for this grid and encoder if absent.

        Raises:
            TokenCacheMismatchError: an existing cache holds another encoder's tokens.
        """
        if cls.exists(root):
            cache = cls.open(root)
            if cache.shape != (tokens, width) or cache.model != model:
                raise TokenCacheMismatchError(
                    f"the token cache in {root} holds tokens of {cache.model} {cache.shape}, not {model} {(tokens, width)}; "
                    f"delete {root}/tokens.* to rebuild it."
                )
            return cache
        root.mkdir(parents=True, exist_ok=True)
        header = {
            "format": FORMAT,
            "schema": SCHEMA_VERSION,
            "tokens": tokens,
            "width": width,
            "dtype": "float16",
            "model": model,
        }
        atomic_write_bytes(root / "tokens.json", json.dumps(header, indent=2).encode())
        return cls(root, tokens, width, model)

    @classmethod
    def open(cls, root: Path) -> TokenCache:
        """Open an existing cache.

        Raises:
            CorruptFileError: the header is unreadable.
            LibraryVersionError: written by a newer xmr.
        """
        path = root / "tokens.json"
        try:
            header = json.loads(path.read_text())
            tokens, width, model = int(header["tokens"]), int(header["width"]), str(header["model"])
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise CorruptFileError(
                f"{path} is unreadable ({exc}); delete {root}/tokens.* and re-index with --cache-tokens."
            ) from exc
        if header.get("format") != FORMAT or int(header.get("schema", 0)) > SCHEMA_VERSION:
            raise LibraryVersionError(
                f"{path} was written by a newer xmr (schema {header.get('schema')}); upgrade xmr."
            )
        return cls(root, tokens, width, model)

    # ---- writing (under the library's write lock) -------------------------------------

    def append(self, hashes: list[str], tokens: np.ndarray) -> None:
        """Append rows ``tokens (n, T, W)`` keyed by hex content ``hashes``; durable on return."""
        if len(hashes) == 0:
            return
        rows = np.ascontiguousarray(tokens, dtype=np.float16)
        if rows.shape[1:] != self.shape or rows.shape[0] != len(hashes):
            raise ValueError(f"token rows {rows.shape} do not fit the cache's {self.shape} for {len(hashes)} keys")
        keys = b"".join(bytes.fromhex(h)[:KEY_BYTES].ljust(KEY_BYTES, b"\0") for h in hashes)
        count = self._committed_rows()
        _append_at(self.data_path, count * self._row_bytes, rows.tobytes())
        _append_at(self.keys_path, count * KEY_BYTES, keys)

    def _committed_rows(self) -> int:
        keys = self.keys_path.stat().st_size if self.keys_path.exists() else 0
        data = self.data_path.stat().st_size if self.data_path.exists() else 0
        return min(keys // KEY_BYTES, data // self._row_bytes)

    # ---- reading ---------------------------------------------------------------------

    def __len__(self) -> int:
        with self._lock:
            self._refresh()
            return len(self._rows)

    def get(self, hashes: list[str]) -> tuple[np.ndarray, np.ndarray]:
        """Rows for ``hashes``: tokens ``(n, T, W)`` float16 (zeros where missing), found ``(n,)``."""
        with self._lock:
            self._refresh()
            rows = [
                self._rows.get(bytes.fromhex(h)[:KEY_BYTES].ljust(KEY_BYTES, b"\0"), -1) if h else -1 for h in hashes
            ]
            data = self._data
        found = np.array(rows, dtype=np.int64) >= 0
        out = np.zeros((len(hashes), *self.shape), np.float16)
        if data is not None and found.any():
            out[found] = data[np.array(rows)[found]]
        return out, found

    def size_bytes(self) -> int:
        """Bytes on disk (data and keys)."""
        return sum(p.stat().st_size for p in (self.data_path, self.keys_path) if p.exists())

    def _refresh(self) -> None:
        """Re-map the files when they grew (another process or thread appended)."""
        size = self.keys_path.stat().st_size if self.keys_path.exists() else 0
        if size == self._seen_size:
            return
        count = self._committed_rows()
        keys = (
            np.fromfile(self.keys_path, dtype=np.uint8, count=count * KEY_BYTES).reshape(count, KEY_BYTES)
            if count
            else np.zeros((0, KEY_BYTES), np.uint8)
        )
        self._rows = {key.tobytes(): row for row, key in enumerate(keys)}  # the last row of a key wins
        self._data = (
            np.memmap(self.data_path, dtype=np.float16, mode="r", shape=(count, *self.shape)) if count else None
        )
        self._seen_size = size


def _append_at(path: Path, offset: int, payload: bytes) -> None:
    """Write ``payload`` at ``offset`` (cutting any torn tail beyond it) and fsync."""
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        os.ftruncate(fd, offset)
        os.lseek(fd, offset, os.SEEK_SET)
        view = memoryview(payload)
        while view:
            view = view[os.write(fd, view) :]
        os.fsync(fd)
    finally:
        os.close(fd)
