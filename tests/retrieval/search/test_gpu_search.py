"""The torch (GPU) exact searcher against the numpy exact index, the oracle.

Everything runs with ``device="cpu"`` here (same torch code, fp16 matrix products on the
CPU); the ``cuda`` tests repeat the oracle check on a GPU and skip without one.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from index.kinds.exact import ExactIndex
from index.vectors import normalize
from retrieval.search.gpu_search import GpuSearch, TorchExactIndex, gpu_search_for

CUDA = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")


def _data(n: int, dim: int = 48, seed: int = 0, q: int = 7) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    ids = rng.permutation(n * 3)[:n].astype(np.int64)  # sparse, unordered ids
    return ids, normalize(rng.normal(size=(n, dim))), normalize(rng.normal(size=(q, dim)))


def _same(got: list, want: list) -> None:
    assert len(got) == len(want)
    for g, w in zip(got, want):
        np.testing.assert_allclose(g.scores, w.scores, atol=1e-5)
        # Ids agree except where two scores tie within float32 summation-order noise.
        differ = g.ids != w.ids
        assert np.all(np.abs(g.scores[differ] - w.scores[differ]) < 1e-6) and set(g.ids) == set(w.ids)
        assert g.scores.dtype == np.float32 and g.ids.dtype == np.int64


@pytest.mark.parametrize("device", ["cpu", pytest.param("cuda", marks=CUDA)])
def test_same_hits_as_exact_search(device: str) -> None:
    ids, vectors, queries = _data(3000)
    oracle = ExactIndex(48, ids, vectors)
    searcher = TorchExactIndex(oracle, device)
    for k in (1, 10, 100):
        _same(searcher.search(queries, k), oracle.search(queries, k))
    _same(searcher.search(queries[0], 5), oracle.search(queries[:1], 5))  # a single (d,) query
    _same(searcher.search(queries, 5000), oracle.search(queries, 5000))  # k > n: all, sorted


@pytest.mark.parametrize("device", ["cpu", pytest.param("cuda", marks=CUDA)])
def test_allowed_filter_like_exact_search(device: str) -> None:
    ids, vectors, queries = _data(2000, seed=1)
    oracle = ExactIndex(48, ids, vectors)
    searcher = TorchExactIndex(oracle, device)
    rng = np.random.default_rng(2)
    for allowed in (
        rng.choice(ids, 3, replace=False),
        rng.choice(ids, 1500, replace=False),
        np.array([-5, 10**9]),
        ids,
    ):
        _same(searcher.search(queries, 10, allowed), oracle.search(queries, 10, allowed))
    assert all(len(n.ids) == 0 for n in searcher.search(queries, 10, np.zeros(0, np.int64)))


def test_blocks_merge_across_the_matrix(monkeypatch: pytest.MonkeyPatch) -> None:
    import retrieval.search.gpu_search as gpu_search

    monkeypatch.setattr(gpu_search, "_SCORE_BYTES", 7 * 2 * 300)  # blocks of 300 rows for 7 queries
    ids, vectors, queries = _data(2500, seed=3)
    oracle = ExactIndex(48, ids, vectors)
    searcher = TorchExactIndex(oracle, "cpu")
    _same(searcher.search(queries, 20), oracle.search(queries, 20))
    allowed = ids[::3]
    _same(searcher.search(queries, 20, allowed), oracle.search(queries, 20, allowed))


def test_near_ties_in_fp16_come_out_in_exact_order() -> None:
    # 200 vectors a hair apart (below fp16 resolution near 1.0, 5e-4): float32 rescoring orders them.
    rng = np.random.default_rng(4)
    base = normalize(rng.normal(size=(1, 32)))
    vectors = normalize(base + rng.normal(scale=0.01, size=(200, 32)))  # cosines ~1e-5 apart
    vectors = np.concatenate([vectors, normalize(rng.normal(size=(800, 32)))])
    ids = np.arange(1000, dtype=np.int64)
    oracle = ExactIndex(32, ids, vectors)
    _same(TorchExactIndex(oracle, "cpu").search(base, 10), oracle.search(base, 10))


def test_hook_caches_per_index_and_extends_appends() -> None:
    ids, vectors, queries = _data(1000, seed=5)
    hook = GpuSearch("cpu", min_vectors=500)
    small = ExactIndex(48, ids[:400], vectors[:400])
    assert hook(small) is small  # below min_vectors: numpy search
    first = ExactIndex(48, ids[:600], vectors[:600])
    searcher = hook(first)
    assert isinstance(searcher, TorchExactIndex) and hook(first) is searcher
    grown = first.upserted(ids[600:], vectors[600:])  # appended only: device rows reused
    extended = hook(grown)
    assert extended is not searcher and len(extended) == 1000
    assert extended._dev[:600].data_ptr() != 0 and torch.equal(extended._dev[:600], searcher._dev)
    _same(extended.search(queries, 10), grown.search(queries, 10))
    shrunk = grown.removed(ids[:10])  # not an append: uploaded afresh
    _same(hook(shrunk).search(queries, 10), shrunk.search(queries, 10))

    class NoVectors:  # an approximate index: searched as it is
        kind, dim = "ivf", 48

        def __len__(self) -> int:
            return 10**6

    approximate = NoVectors()
    assert hook(approximate) is approximate  # type: ignore[arg-type]


def test_no_hook_without_cuda_or_on_cpu_device() -> None:
    assert gpu_search_for("cpu") is None
    if not torch.cuda.is_available():
        assert gpu_search_for("auto") is None and gpu_search_for("cuda") is None


def test_library_searches_through_the_hook(open_library, photos, monkeypatch: pytest.MonkeyPatch) -> None:  # noqa: ANN001
    lib = open_library()
    lib.index([photos])
    want = lib.search(text="a cat", k=4)
    lib.images.accelerate = GpuSearch("cpu", min_vectors=1)
    calls = []
    original = TorchExactIndex.search

    def spy(self, *args, **kwargs):  # noqa: ANN001, ANN002, ANN003, ANN202
        calls.append(len(self))
        return original(self, *args, **kwargs)

    monkeypatch.setattr(TorchExactIndex, "search", spy)
    got = lib.search(text="a cat", k=4)
    assert calls == [len(lib.images.index)]
    assert [(h.path, round(h.score, 5)) for h in got] == [(h.path, round(h.score, 5)) for h in want]
