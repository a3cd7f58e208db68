"""Vector indexes against a brute-force numpy oracle (exact and IVF, copy on write)."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import index.kinds.exact as exact_mod
from index.errors import DimensionMismatchError
from index.kinds.exact import ExactIndex
from index.kinds.factory import build_index
from index.kinds.ivf import IVFIndex, ivf_lists
from index.vectors import EXACT, IVF, as_matrix, normalize
from tests.helpers.oracles import (
    FAST,
    TOL,
    assert_topk,
    brute_force,
    clustered_rows,
    unit_rows,
)

DIM = 16


@pytest.fixture(params=[None, 7], ids=["one-block", "block-7"])
def block(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> int | None:
    """Run a test with the default block size and with blocks of 7 rows (merge path)."""
    if request.param is not None:
        monkeypatch.setattr(exact_mod, "_BLOCK", request.param)
    return request.param


# ---- ExactIndex.search -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("n", "k"),
    [(300, 10), (300, 1), (64, 64), (40, 100), (1, 5), (7, 7), (8, 7), (15, 14)],
)
def test_exact_search_matches_brute_force(rng: np.random.Generator, block: int | None, n: int, k: int) -> None:
    ids = rng.choice(10_000, n, replace=False).astype(np.int64)
    x = unit_rows(rng, n, DIM)
    queries = unit_rows(rng, 25, DIM)  # many queries in one call
    hits = ExactIndex(DIM, ids, x).search(queries, k)
    assert len(hits) == len(queries)
    for got, q in zip(hits, queries):
        assert_topk(got, ids, x, q, k)
        assert len(got.ids) == min(k, n)


def test_exact_search_one_query_as_1d_vector(rng: np.random.Generator) -> None:
    x = unit_rows(rng, 50, DIM)
    ids = np.arange(50, dtype=np.int64)
    (got,) = ExactIndex(DIM, ids, x).search(x[3], 4)  # (dim,) is read as (1, dim)
    assert got.ids[0] == 3
    assert_topk(got, ids, x, x[3], 4)


def test_exact_search_ties_are_kept_whole_and_unduplicated(block: int | None) -> None:
    # For the query e0 a row's score is exactly its first component, so ties are exact.
    rng = np.random.default_rng(3)
    firsts = np.array([1.0] * 6 + [0.5] * 5 + [0.25] * 9)
    rest = unit_rows(rng, len(firsts), DIM - 1) * np.sqrt(1 - firsts**2)[:, None]
    x = np.ascontiguousarray(np.column_stack([firsts, rest]), dtype=np.float32)
    perm = rng.permutation(len(firsts))  # spread each tie group over the blocks
    x, firsts = x[perm], firsts[perm]
    ids = np.arange(100, 100 + len(firsts), dtype=np.int64)
    query = np.eye(DIM, dtype=np.float32)[0]
    index = ExactIndex(DIM, ids, x)

    (got,) = index.search(query, 8)
    assert got.scores.tolist() == [1.0] * 6 + [0.5] * 2
    assert set(got.ids[:6].tolist()) == set(ids[firsts == 1.0].tolist())
    assert set(got.ids[6:].tolist()) <= set(ids[firsts == 0.5].tolist())
    assert len(set(got.ids.tolist())) == 8

    (top3,) = index.search(query, 3)
    assert top3.scores.tolist() == [1.0] * 3
    assert set(top3.ids.tolist()) <= set(ids[firsts == 1.0].tolist()) and len(set(top3.ids.tolist())) == 3

    (whole,) = index.search(query, 100)
    assert sorted(whole.ids.tolist()) == ids.tolist()
    assert whole.scores.tolist() == sorted(firsts.tolist(), reverse=True)


def test_exact_search_empty_index_k_zero_and_no_queries(rng: np.random.Generator) -> None:
    empty = ExactIndex(DIM)
    hits = empty.search(unit_rows(rng, 3, DIM), 5)
    assert [len(h.ids) for h in hits] == [0, 0, 0]
    assert all(h.ids.dtype == np.int64 and h.scores.dtype == np.float32 for h in hits)
    full = ExactIndex(DIM, np.arange(10), unit_rows(rng, 10, DIM))
    assert [len(h.ids) for h in full.search(unit_rows(rng, 2, DIM), 0)] == [0, 0]
    assert full.search(np.zeros((0, DIM), np.float32), 3) == []


def test_exact_search_rejects_queries_of_another_width(rng: np.random.Generator) -> None:
    index = ExactIndex(DIM, np.arange(10), unit_rows(rng, 10, DIM))
    with pytest.raises(DimensionMismatchError):
        index.search(unit_rows(rng, 2, DIM + 1), 3)
    with pytest.raises(DimensionMismatchError):
        index.upserted(np.array([1]), unit_rows(rng, 1, DIM - 1))


# ---- ExactIndex copy-on-write updates ----------------------------------------------------


def _contents(index: ExactIndex) -> dict[int, tuple[float, ...]]:
    return {int(i): tuple(v.tolist()) for i, v in zip(index.ids(), np.asarray(index.vectors()))}


def test_exact_upserted_replaces_adds_and_last_duplicate_wins(rng: np.random.Generator) -> None:
    x = unit_rows(rng, 10, DIM)
    old = ExactIndex(DIM, np.arange(5, dtype=np.int64), x[:5])
    before = _contents(old)
    new = old.upserted(np.array([3, 7, 7, 9, 3, 7]), x[4:10])  # 3 -> x[8], 7 -> x[9], 9 -> x[7]

    want = {0: x[0], 1: x[1], 2: x[2], 3: x[8], 4: x[4], 7: x[9], 9: x[7]}
    assert _contents(new) == {i: tuple(v.tolist()) for i, v in want.items()}
    assert _contents(old) == before, "upserted() changed the published index"
    assert len(new) == 7 and new.ids().dtype == np.int64


def test_exact_removed_drops_only_known_ids(rng: np.random.Generator) -> None:
    x = unit_rows(rng, 6, DIM)
    old = ExactIndex(DIM, np.arange(6, dtype=np.int64), x)
    new = old.removed(np.array([1, 4, 99]))
    assert sorted(new.ids().tolist()) == [0, 2, 3, 5]
    assert _contents(new) == {i: tuple(x[i].tolist()) for i in (0, 2, 3, 5)}
    assert len(old) == 6, "removed() changed the published index"
    assert old.removed(np.array([99])) is old  # nothing to do: no copy
    assert len(old.removed(np.arange(6))) == 0


_ops = st.lists(
    st.one_of(
        st.tuples(st.just("upsert"), st.lists(st.integers(0, 30), min_size=1, max_size=12), st.integers(0, 2**31)),
        st.tuples(st.just("remove"), st.lists(st.integers(0, 35), max_size=10), st.just(0)),
    ),
    min_size=1,
    max_size=10,
)


@settings(FAST, max_examples=60)
@given(ops=_ops, k=st.integers(1, 40))
def test_exact_updates_follow_a_dict_oracle(ops: list, k: int) -> None:
    index = ExactIndex(DIM)
    model: dict[int, np.ndarray] = {}
    query = unit_rows(np.random.default_rng(k), 1, DIM)[0]
    for op, ids, seed in ops:
        snapshot = _contents(index)
        if op == "upsert":
            vecs = unit_rows(np.random.default_rng(seed), len(ids), DIM)
            new = index.upserted(np.array(ids, np.int64), vecs)
            for i, v in zip(ids, vecs):  # one by one: later duplicates win
                model[i] = v
        else:
            new = index.removed(np.array(ids, np.int64))
            for i in ids:
                model.pop(i, None)
        assert _contents(index) == snapshot, "the previous index changed"
        index = new
        assert _contents(index) == {i: tuple(v.tolist()) for i, v in model.items()}
        keys = np.array(sorted(model), np.int64)
        matrix = np.array([model[i] for i in keys]).reshape(-1, DIM)
        (got,) = index.search(query, k)
        assert_topk(got, keys, matrix, query, k)


# ---- IVFIndex --------------------------------------------------------------------------

N_IVF = 1200


@pytest.fixture(scope="module")
def ivf_data() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(11)
    return np.arange(5000, 5000 + N_IVF, dtype=np.int64), unit_rows(rng, N_IVF, DIM)


@pytest.fixture(scope="module")
def ivf_full(ivf_data: tuple[np.ndarray, np.ndarray]) -> IVFIndex:
    """An IVF index that probes every list: its answers must be exact."""
    ids, x = ivf_data
    return IVFIndex.build(DIM, ids, x, nprobe=ivf_lists(N_IVF))


def test_ivf_probing_every_list_equals_exact_search(ivf_data, ivf_full: IVFIndex) -> None:
    ids, x = ivf_data
    queries = unit_rows(np.random.default_rng(12), 40, DIM)
    k = 10
    exact = ExactIndex(DIM, ids, x).search(queries, k)
    approx = ivf_full.search(queries, k)
    separated = 0
    for q, a, e in zip(queries, approx, exact):
        assert_topk(a, ids, x, q, k)
        np.testing.assert_allclose(a.scores, e.scores, atol=TOL)
        want_scores, want_ids = brute_force(ids, x, q, k + 1)
        if np.min(-np.diff(want_scores)) > 1e-4:  # no near-ties: the order is determined
            separated += 1
            assert a.ids.tolist() == e.ids.tolist() == want_ids[:k].tolist()
    assert separated >= len(queries) // 2, "test data has too many near-ties to be useful"


def test_ivf_default_nprobe_recall_on_clustered_data() -> None:
    rng = np.random.default_rng(5)
    n, k = 3000, 10
    x, centres = clustered_rows(rng, n, DIM, clusters=40)
    ids = np.arange(n, dtype=np.int64) * 3 + 1  # ids are not row numbers
    index = build_index(IVF, DIM, ids, x)
    assert isinstance(index, IVFIndex) and 8 <= index.nprobe <= index._index.nlist  # tuned at build
    near = centres[rng.integers(0, len(centres), 100)] + 0.15 * rng.standard_normal((100, DIM))
    queries = normalize(near)  # (100, DIM), from the same clusters as the data
    hits = index.search(queries, k)
    found = 0
    for q, got in zip(queries, hits):
        _, want = brute_force(ids, x, q, k)
        found += len(set(want.tolist()) & set(got.ids.tolist()))
        assert not set(got.ids.tolist()) - set(ids.tolist())
    recall = found / (k * len(queries))
    assert recall >= 0.9, f"recall@10 {recall:.3f}"


def test_ivf_updates_keep_ids_consistent_and_copy_on_write(ivf_data, ivf_full: IVFIndex) -> None:
    ids, x = ivf_data
    rng = np.random.default_rng(13)
    gone = ids[::7]
    after_remove = ivf_full.removed(gone)
    assert len(ivf_full) == N_IVF and ivf_full._index.ntotal == N_IVF, "removed() changed the original"
    assert set(after_remove.ids().tolist()) == set(ids.tolist()) - set(gone.tolist())
    assert after_remove._index.ntotal == len(after_remove)

    new_vecs = unit_rows(rng, 4, DIM)
    # 5000 exists (replaced), 5007 was removed (comes back), 99999 is new, duplicate: last wins.
    up_ids = np.array([5000, 5007, 99999, 5000], np.int64)
    after_up = after_remove.upserted(up_ids, new_vecs)
    model = {int(i): v for i, v in zip(ids, x) if int(i) not in set(gone.tolist())}
    model.update({5000: new_vecs[3], 5007: new_vecs[1], 99999: new_vecs[2]})
    assert sorted(after_up.ids().tolist()) == sorted(model)
    assert after_up._index.ntotal == len(after_up) == len(model)
    assert len(after_remove) == after_remove._index.ntotal == N_IVF - len(gone)

    keys = np.array(sorted(model), np.int64)
    matrix = np.array([model[i] for i in keys])
    queries = np.vstack([new_vecs, x[gone[:6] - 5000], unit_rows(rng, 10, DIM)])
    for q, got in zip(queries, after_up.search(queries, 15)):
        assert_topk(got, keys, matrix, q, 15)
    for i, v in ((5000, new_vecs[3]), (5007, new_vecs[1]), (99999, new_vecs[2])):
        (got,) = after_up.search(v, 1)
        assert got.ids.tolist() == [i] and got.scores[0] == pytest.approx(1.0, abs=TOL)


@settings(FAST, max_examples=25)
@given(ops=_ops)
def test_ivf_updates_follow_a_dict_oracle(ivf_data, ivf_full: IVFIndex, ops: list) -> None:
    ids, x = ivf_data
    model = {int(i): v for i, v in zip(ids, x)}
    index = ivf_full
    query = unit_rows(np.random.default_rng(len(ops)), 1, DIM)[0]
    for op, op_ids, seed in ops:
        op_ids = [5000 + 37 * i for i in op_ids]  # mix of existing ids and new ones
        if op == "upsert":
            vecs = unit_rows(np.random.default_rng(seed), len(op_ids), DIM)
            index = index.upserted(np.array(op_ids, np.int64), vecs)
            model.update(zip(op_ids, vecs))
        else:
            index = index.removed(np.array(op_ids, np.int64))
            for i in op_ids:
                model.pop(i, None)
        assert sorted(index.ids().tolist()) == sorted(model)
        assert index._index.ntotal == len(model)
    keys = np.array(sorted(model), np.int64)
    matrix = np.array([model[i] for i in keys])
    (got,) = index.search(query, 20)
    assert_topk(got, keys, matrix, query, 20)
    assert len(ivf_full) == ivf_full._index.ntotal == N_IVF


def test_ivf_search_never_returns_removed_ids(ivf_data) -> None:
    ids, x = ivf_data
    index = IVFIndex.build(DIM, ids, x)  # default nprobe
    gone = ids[: N_IVF // 2]
    smaller = index.removed(gone)
    hits = smaller.search(x[: N_IVF // 2], 20)  # queries aimed right at the removed rows
    returned = set(np.concatenate([h.ids for h in hits]).tolist())
    assert returned and not returned & set(gone.tolist())
    assert returned <= set(smaller.ids().tolist())


def test_ivf_neighbors_have_no_padding_when_lists_hold_fewer_than_k(ivf_data) -> None:
    ids, x = ivf_data
    index = IVFIndex.build(DIM, ids, x, nprobe=1)
    queries = unit_rows(np.random.default_rng(14), 20, DIM)
    hits = index.search(queries, N_IVF)  # one list holds far fewer than k
    for got in hits:
        assert 0 < len(got.ids) < N_IVF, "faiss did not pad: the test proves nothing"
        assert -1 not in got.ids.tolist()
        assert len(got.scores) == len(got.ids)
        assert np.all(np.isfinite(got.scores)) and np.all(np.diff(got.scores) <= TOL)
        assert set(got.ids.tolist()) <= set(ids.tolist())


# ---- build_index, as_matrix, normalize -----------------------------------------------------


@pytest.mark.parametrize(
    ("kind", "n", "want"), [(IVF, 999, EXACT), (IVF, 1000, IVF), (EXACT, 1500, EXACT), (IVF, 0, EXACT)]
)
def test_build_index_uses_exact_below_1000_vectors(kind: str, n: int, want: str) -> None:
    rng = np.random.default_rng(n)
    ids = np.arange(n, dtype=np.int64)
    x = unit_rows(rng, n, DIM)
    index = build_index(kind, DIM, ids, x)
    assert index.kind == want and len(index) == n
    assert sorted(index.ids().tolist()) == ids.tolist()
    if n:
        q = unit_rows(rng, 1, DIM)[0]
        (got,) = index.search(q, 5)
        assert len(got.ids) == 5 and set(got.ids.tolist()) <= set(ids.tolist())


def test_build_index_exact_copies_its_input(rng: np.random.Generator) -> None:
    x = unit_rows(rng, 20, DIM)
    index = build_index(EXACT, DIM, np.arange(20), x)
    x[:] = 0  # the caller reusing its buffer must not change the index
    assert np.count_nonzero(index.vectors()) > 0


def test_as_matrix_coerces_to_the_array_contract() -> None:
    fortran = np.asfortranarray(np.arange(24, dtype=np.float64).reshape(3, 8))
    m = as_matrix(fortran, 8)
    assert m.dtype == np.float32 and m.flags.c_contiguous and m.shape == (3, 8)
    np.testing.assert_array_equal(m, fortran)
    assert as_matrix(np.ones(8), 8).shape == (1, 8)


@pytest.mark.parametrize("shape", [(3, 7), (3, 9), (7,), (2, 2, 8), (0,)])
def test_as_matrix_rejects_the_wrong_width(shape: tuple[int, ...]) -> None:
    with pytest.raises(DimensionMismatchError, match="width 8"):
        as_matrix(np.ones(shape, np.float32), 8)
    assert issubclass(DimensionMismatchError, ValueError)


def test_normalize_gives_unit_rows_and_keeps_zero_rows(rng: np.random.Generator) -> None:
    x = rng.standard_normal((50, DIM)) * rng.uniform(0.01, 100, (50, 1))
    x[7] = 0
    out = normalize(x)
    assert out.dtype == np.float32 and out.flags.c_contiguous
    norms = np.linalg.norm(out, axis=1)
    np.testing.assert_allclose(np.delete(norms, 7), 1.0, atol=1e-6)
    assert norms[7] == 0
    cos = np.sum(out * x, axis=1) / np.maximum(np.linalg.norm(x, axis=1), 1e-12)
    np.testing.assert_allclose(np.delete(cos, 7), 1.0, atol=1e-5)  # same directions


def test_tuned_nprobe_reaches_the_recall_target_on_hard_data() -> None:
    from index.kinds.ivf import tune_nprobe

    rng = np.random.default_rng(9)
    n = 4000
    x, _ = clustered_rows(rng, n, DIM, clusters=200)
    x = normalize(x + 0.6 * rng.standard_normal(x.shape))  # heavy noise: neighbours spread over lists
    ids = np.arange(n, dtype=np.int64)
    easy = IVFIndex.build(DIM, ids, x, nprobe=8)
    tuned = IVFIndex.build(DIM, ids, x, target_recall=0.95)
    assert tuned.nprobe > easy.nprobe  # this data needs more probes than the minimum

    def recall(index: IVFIndex) -> float:
        queries = normalize(x[:150] + 0.05 * rng.standard_normal((150, DIM)))
        found = 0
        for q, got in zip(queries, index.search(queries, 10)):
            _, want = brute_force(ids, x, q, 10)
            found += len(set(want.tolist()) & set(got.ids.tolist()))
        return found / 1500

    assert recall(tuned) >= 0.9 > recall(easy)
    assert tune_nprobe(tuned._index, x, ids, target=1.0) <= tuned._index.nlist


@pytest.mark.parametrize("share", [0.002, 0.01, 0.1, 0.5, 1.0])
def test_filtered_search_equals_brute_force_over_the_selection(share: float) -> None:
    rng = np.random.default_rng(21)
    n = 4000
    x, _ = clustered_rows(rng, n, DIM, clusters=50)
    ids = np.arange(n, dtype=np.int64) * 5 + 2
    allowed = np.sort(rng.choice(ids, max(1, int(share * n)), replace=False))
    queries = normalize(rng.standard_normal((6, DIM)).astype(np.float32))
    keep = np.isin(ids, allowed)
    exact, ivf = ExactIndex(DIM, ids, x), IVFIndex.build(DIM, ids, x)
    for q, got_exact, got_ivf in zip(queries, exact.search(queries, 10, allowed), ivf.search(queries, 10, allowed)):
        _, want = brute_force(ids[keep], x[keep], q, 10)
        assert got_exact.ids.tolist() == want.tolist()
        assert len(got_ivf.ids) == min(10, len(allowed))  # k hits whenever k exist
        assert set(got_ivf.ids.tolist()) <= set(allowed.tolist())
        overlap = len(set(got_ivf.ids.tolist()) & set(want.tolist())) / len(want)
        assert overlap >= (1.0 if share <= 0.01 else 0.7)  # small selections are scanned exactly


def test_filter_with_unknown_or_no_ids() -> None:
    x = normalize(np.random.default_rng(3).standard_normal((50, DIM)).astype(np.float32))
    index = ExactIndex(DIM, np.arange(50, dtype=np.int64), x)
    assert [len(n.ids) for n in index.search(x[:2], 5, np.array([], np.int64))] == [0, 0]
    (only,) = index.search(x[:1], 5, np.array([7, 999], np.int64))
    assert only.ids.tolist() == [7]
