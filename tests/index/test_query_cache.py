"""The query-vector cache: exact round trip, bounded, bound to one model, never in the way."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import numpy as np
import pytest

from index.query_cache import QueryVectorCache


def _unit(seed: int, dim: int = 8) -> np.ndarray:
    v = np.random.default_rng(seed).standard_normal(dim).astype(np.float32)
    return v / np.linalg.norm(v)


def test_round_trip_is_exact_and_a_miss_creates_no_file(tmp_path: Path) -> None:
    cache = QueryVectorCache(tmp_path / "q.sqlite", "model-a", 8)
    assert cache.get("a cat") is None and not cache.path.exists()
    cache.put("a cat", _unit(0))
    cache.put("a dog", _unit(1))
    again = QueryVectorCache(tmp_path / "q.sqlite", "model-a", 8)  # another process, say
    assert np.array_equal(again.get("a cat"), _unit(0)) and np.array_equal(again.get("a dog"), _unit(1))
    assert again.get("a cat ") is None  # keys are exact texts
    assert len(again) == 2


def test_least_recently_used_rows_go_first(tmp_path: Path) -> None:
    cache = QueryVectorCache(tmp_path / "q.sqlite", "m", 8, capacity=3)
    for i, text in enumerate(["one", "two", "three"]):
        cache.put(text, _unit(i))
    assert cache.get("one") is not None  # now the most recently used
    cache.put("four", _unit(4))
    assert len(cache) == 3
    assert cache.get("two") is None
    assert [cache.get(t) is not None for t in ("one", "three", "four")] == [True, True, True]


def test_a_file_of_another_model_is_emptied_not_used(tmp_path: Path) -> None:
    QueryVectorCache(tmp_path / "q.sqlite", "model-a", 8).put("a cat", _unit(0))
    other = QueryVectorCache(tmp_path / "q.sqlite", "model-b", 8)
    assert other.get("a cat") is None and len(other) == 0
    other.put("a cat", _unit(5))
    assert np.array_equal(other.get("a cat"), _unit(5))
    assert QueryVectorCache(tmp_path / "q.sqlite", "model-a", 8).get("a cat") is None


def test_a_damaged_file_is_replaced_and_a_locked_one_skipped(tmp_path: Path) -> None:
    path = tmp_path / "q.sqlite"
    path.write_bytes(b"not a database at all" * 100)
    cache = QueryVectorCache(path, "m", 8, timeout=0.05)
    assert cache.get("x") is None and not path.exists()  # deleted, no exception
    cache.put("x", _unit(0))
    assert np.array_equal(cache.get("x"), _unit(0))

    holder = sqlite3.connect(path)
    holder.execute("BEGIN EXCLUSIVE")  # another writer holds the file
    try:
        cache.put("y", _unit(1))  # gives up after the timeout instead of failing the query
        assert cache.get("x") is None  # cannot read either while it is held; the caller embeds
    finally:
        holder.rollback()
        holder.close()
    assert path.exists() and np.array_equal(cache.get("x"), _unit(0)) and cache.get("y") is None


def test_a_vector_of_the_wrong_width_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="4-d vector for a 8-d cache"):
        QueryVectorCache(tmp_path / "q.sqlite", "m", 8).put("x", np.zeros(4, np.float32))


def test_a_file_deleted_under_a_running_process_is_started_again(tmp_path: Path) -> None:
    cache = QueryVectorCache(tmp_path / "q.sqlite", "m", 8)
    cache.put("x", _unit(0))
    cache.path.unlink()  # `rm queries.sqlite` while `xmr serve` runs
    assert cache.get("x") is None
    cache.put("x", _unit(1))
    assert np.array_equal(cache.get("x"), _unit(1)) and len(cache) == 1


def test_a_text_that_is_not_utf8_is_neither_looked_up_nor_stored(tmp_path: Path) -> None:
    cache = QueryVectorCache(tmp_path / "q.sqlite", "m", 8)
    cache.put("a cat", _unit(0))
    for text in ("red \udcff circle", "\ud800"):  # lone surrogates: a non-UTF-8 argv byte, a JSON "\ud800"
        assert cache.get(text) is None
        cache.put(text, _unit(1))  # skipped, not a crash
        assert cache.get(text) is None
    assert len(cache) == 1 and np.array_equal(cache.get("a cat"), _unit(0))
