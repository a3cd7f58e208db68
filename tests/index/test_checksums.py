"""Damage that keeps a file's size is seen on load: vector snapshots, cached query vectors,
cached token rows (issue 23, item 5). Old files without checksums still load."""

from __future__ import annotations

import json
import sqlite3
import struct
from pathlib import Path

import numpy as np
import pytest

from index.checksums import BLOCK, read_footer
from index.errors import CorruptFileError
from index.kinds.exact import ExactIndex
from index.query_cache import QueryVectorCache
from index.snapshot import read_header, read_snapshot, write_snapshot
from index.tokens import TokenCache

DIM = 64


def _exact(count: int, seed: int = 0) -> ExactIndex:
    rng = np.random.default_rng(seed)
    vectors = rng.standard_normal((count, DIM)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    return ExactIndex(DIM, np.arange(1, count + 1, dtype=np.int64), vectors)


def test_ten_rows_overwritten_in_a_snapshot_are_named_by_block(tmp_path: Path) -> None:
    path = tmp_path / "images.vec"
    write_snapshot(path, _exact(10_000), 7)  # 2.6 MB: three checksum blocks
    header, offset = read_header(path)
    rows_at = offset + 8 * header.count
    with open(path, "r+b") as handle:  # rows 5000..5009, same size
        handle.seek(rows_at + 5000 * 4 * DIM)
        handle.write(np.ones((10, DIM), "<f4").tobytes())
    with pytest.raises(
        CorruptFileError, match=r"1 of its 3 blocks do not match their checksums \(bytes 1048576-2097152\)"
    ):
        read_snapshot(path, DIM)


def test_a_flipped_bit_in_the_header_is_seen(tmp_path: Path) -> None:
    path = tmp_path / "images.vec"
    write_snapshot(path, _exact(50), 3)
    data = bytearray(path.read_bytes())
    at = data.index(b'"generation": 3') + len('"generation": ')
    data[at] ^= 0x01  # "3" -> "2": a valid header that lies about the generation
    path.write_bytes(bytes(data))
    with pytest.raises(CorruptFileError, match="do not match their checksums"):
        read_snapshot(path, DIM)


def test_the_footer_covers_every_byte_before_it(tmp_path: Path) -> None:
    path = tmp_path / "images.vec"
    write_snapshot(path, _exact(5000), 1)
    covered, block, sums = read_footer(path, path.stat().st_size)  # type: ignore[misc]
    assert block == BLOCK and covered == path.stat().st_size - 4 * len(sums) - 20
    assert len(sums) == -(-covered // BLOCK)


def test_a_snapshot_of_version_2_still_loads(tmp_path: Path) -> None:
    """Written before checksums: no footer, header version 2. Loaded as it is (unchecked)."""
    path = tmp_path / "images.vec"
    index = _exact(300)
    write_snapshot(path, index, 9)
    data = path.read_bytes()
    covered, _, _ = read_footer(path, len(data))  # type: ignore[misc]
    (length,) = struct.unpack("<I", data[8:12])
    header = json.loads(data[12 : 12 + length])
    header["version"] = 2
    raw = json.dumps(header).encode()
    path.write_bytes(data[:8] + struct.pack("<I", len(raw)) + raw + data[12 + length : covered])
    loaded, generation = read_snapshot(path, DIM)
    assert generation == 9 and np.array_equal(loaded.ids(), index.ids())
    assert np.array_equal(np.asarray(loaded.vectors()), index.vectors())  # type: ignore[attr-defined]


def _unit(seed: int, dim: int = 8) -> np.ndarray:
    v = np.random.default_rng(seed).standard_normal(dim).astype(np.float32)
    return v / np.linalg.norm(v)


def test_a_cached_query_vector_damaged_in_place_is_not_returned(tmp_path: Path) -> None:
    cache = QueryVectorCache(tmp_path / "queries.sqlite", "m", 8)
    cache.put("a cat", _unit(0))
    cache.put("a dog", _unit(1))
    with sqlite3.connect(cache.path) as db:  # same length, other numbers
        db.execute("UPDATE vectors SET vector = ? WHERE text = 'a cat'", (_unit(7).tobytes(),))
    db.close()
    assert cache.get("a cat") is None  # embedded again by the caller
    assert np.array_equal(cache.get("a dog"), _unit(1))
    assert len(cache) == 1  # the damaged row is gone
    cache.put("a cat", _unit(0))
    assert np.array_equal(cache.get("a cat"), _unit(0))


def test_a_query_cache_of_format_1_is_emptied_and_used(tmp_path: Path) -> None:
    path = tmp_path / "queries.sqlite"
    with sqlite3.connect(path) as db:  # the layout before checksums
        db.execute("CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)")
        db.execute("CREATE TABLE vectors (text TEXT PRIMARY KEY, vector BLOB NOT NULL, used REAL NOT NULL)")
        db.executemany("INSERT INTO meta VALUES (?, ?)", [("format", "1"), ("model", "m")])
        db.execute("INSERT INTO vectors VALUES ('a cat', ?, 0)", (_unit(3).tobytes(),))
    db.close()
    cache = QueryVectorCache(path, "m", 8)
    assert cache.get("a cat") is None
    cache.put("a cat", _unit(0))
    assert np.array_equal(cache.get("a cat"), _unit(0))


def test_token_rows_damaged_in_place_read_as_missing(tmp_path: Path) -> None:
    cache = TokenCache.create(tmp_path, 3, 4, "m")
    rows = np.arange(3 * 3 * 4, dtype=np.float16).reshape(3, 3, 4)
    keys = ["aa" * 16, "bb" * 16, "cc" * 16]
    cache.append(keys, rows)
    with open(cache.data_path, "r+b") as handle:  # row 1 overwritten, size kept
        handle.seek(1 * 3 * 4 * 2 + 6)
        handle.write(b"\x7f\x7f")
    got, found = TokenCache.open(tmp_path).get(keys)
    assert found.tolist() == [True, False, True]
    assert np.array_equal(got[0], rows[0]) and np.array_equal(got[2], rows[2]) and not got[1].any()


def test_a_token_cache_of_schema_1_still_reads(tmp_path: Path) -> None:
    """Keys of 16 bytes without row checksums, as schema 1 wrote them: read unchecked, appended to as such."""
    rows = np.arange(2 * 3 * 4, dtype=np.float16).reshape(2, 3, 4)
    header = {"format": "xmr-token-cache", "schema": 1, "tokens": 3, "width": 4, "dtype": "float16", "model": "m"}
    (tmp_path / "tokens.json").write_text(json.dumps(header))
    (tmp_path / "tokens.f16").write_bytes(rows.tobytes())
    (tmp_path / "tokens.keys").write_bytes(bytes.fromhex("aa" * 16 + "bb" * 16))
    cache = TokenCache.open(tmp_path)
    assert cache.schema == 1 and len(cache) == 2
    cache.append(["cc" * 16], rows[:1] + 5)
    got, found = TokenCache.open(tmp_path).get(["aa" * 16, "bb" * 16, "cc" * 16])
    assert found.all() and np.array_equal(got[1], rows[1]) and np.array_equal(got[2], rows[0] + 5)
    assert (tmp_path / "tokens.keys").stat().st_size == 3 * 16
