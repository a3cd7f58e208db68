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
import logging
import os
import struct
import threading
import zlib
from pathlib import Path

import numpy as np

from index.atomic import atomic_write_bytes
from index.errors import CorruptFileError, LibraryVersionError, TokenCacheMismatchError
from index.files import disk_full_error, is_disk_full

log = logging.getLogger(__name__)

FORMAT = "xmr-token-cache"
# 1: first release (float16 rows keyed by 16-byte content hashes).
# 2: each key record is followed by the CRC-32 of its row (20 bytes a record), checked when a
#    row is read: a row damaged in place (same size) was handed to the reranker. A damaged row
#    reads as missing (the reranker decodes the image instead). Schema 1 caches still work,
#    unchecked.
SCHEMA_VERSION = 2
KEY_BYTES = 16
_SUM = struct.Struct("<I")


class TokenCache:
    """Append-only, memory-mapped float16 token rows keyed by content hash (thread-safe reads)."""

    def __init__(self, root: Path, tokens: int, width: int, model: str, schema: int = SCHEMA_VERSION) -> None:
        self.root = root
        self.shape = (tokens, width)
        self.model = model
        self.schema = schema  # of the files on disk: 1 has no row checksums
        self._row_bytes = tokens * width * 2
        self._record = KEY_BYTES + (_SUM.size if schema >= 2 else 0)  # bytes per row in tokens.keys
        self._sums: np.ndarray | None = None  # uint32 (rows,): CRC-32 of each row (schema 2)
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
        return cls(root, tokens, width, model, int(header.get("schema", 1)))

    # ---- writing (under the library's write lock) -------------------------------------

    def append(self, hashes: list[str], tokens: np.ndarray) -> None:
        """Append rows ``tokens (n, T, W)`` keyed by hex content ``hashes``; durable on return."""
        if len(hashes) == 0:
            return
        rows = np.ascontiguousarray(tokens, dtype=np.float16)
        if rows.shape[1:] != self.shape or rows.shape[0] != len(hashes):
            raise ValueError(f"token rows {rows.shape} do not fit the cache's {self.shape} for {len(hashes)} keys")
        data = rows.tobytes()
        records = []
        for i, h in enumerate(hashes):
            key = bytes.fromhex(h)[:KEY_BYTES].ljust(KEY_BYTES, b"\0")
            row = data[i * self._row_bytes : (i + 1) * self._row_bytes]
            records.append(key + (_SUM.pack(zlib.crc32(row)) if self.schema >= 2 else b""))
        count = self._committed_rows()
        _append_at(self.data_path, count * self._row_bytes, data)
        _append_at(self.keys_path, count * self._record, b"".join(records))

    def _committed_rows(self) -> int:
        keys = self.keys_path.stat().st_size if self.keys_path.exists() else 0
        data = self.data_path.stat().st_size if self.data_path.exists() else 0
        return min(keys // self._record, data // self._row_bytes)

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
            sums = self._sums
        found = np.array(rows, dtype=np.int64) >= 0
        out = np.zeros((len(hashes), *self.shape), np.float16)
        if data is not None and found.any():
            out[found] = data[np.array(rows)[found]]
        if sums is not None:
            for i in np.flatnonzero(found):
                if zlib.crc32(out[i].tobytes()) != sums[rows[i]]:
                    log.warning(
                        "token cache %s: row %d (image %s) is damaged; it is read from the image instead. "
                        "Delete %s/tokens.* and index with --cache-tokens to write the cache again.",
                        self.root,
                        rows[i],
                        hashes[i],
                        self.root,
                    )
                    found[i] = False
                    out[i] = 0
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
        records = (
            np.fromfile(self.keys_path, dtype=np.uint8, count=count * self._record).reshape(count, self._record)
            if count
            else np.zeros((0, self._record), np.uint8)
        )
        keys = records[:, :KEY_BYTES]
        self._rows = {key.tobytes(): row for row, key in enumerate(keys)}  # the last row of a key wins
        self._sums = records[:, KEY_BYTES:].copy().view("<u4").reshape(-1) if self.schema >= 2 else None
        self._data = (
            np.memmap(self.data_path, dtype=np.float16, mode="r", shape=(count, *self.shape)) if count else None
        )
        self._seen_size = size


def _append_at(path: Path, offset: int, payload: bytes) -> None:
    """Write ``payload`` at ``offset`` (cutting any torn tail beyond it) and fsync.

    Raises:
        DiskFullError: the disk is full; the rows before ``offset`` are intact (the torn
            tail is cut off by the next append).
    """
    try:
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
    except OSError as exc:
        if is_disk_full(exc):
            raise disk_full_error(path.parent, exc, f"adding token rows to {path.name}") from exc
        raise
