"""The library API as callers write it: keyword options, "more like this", typed refusals, closing."""

from __future__ import annotations

import math
import os
from pathlib import Path

import numpy as np
import pytest


@pytest.fixture
def indexed(open_library, photos: Path):  # noqa: ANN001, ANN201
    lib = open_library()
    lib.index(photos)
    return lib


def test_everything_after_the_query_is_keyword_only(indexed) -> None:  # noqa: ANN001
    with pytest.raises(TypeError):
        indexed.search("a cat", 2)  # was read as image=2
    with pytest.raises(TypeError):
        indexed.search_texts("a cat", 2)
    assert len(indexed.search("a cat", k=2)) == 2


def test_similar_ranks_by_the_stored_vector_itself_first(indexed, photos: Path) -> None:  # noqa: ANN001
    from retrieval import ImageFilter, ItemNotFoundError, QueryError

    coffee = indexed.search(image=next(photos.rglob("coffee.*")), k=1)[0]
    like = indexed.similar(coffee.id, k=6)
    vectors = indexed.catalog.vectors_for(list(indexed.catalog.vector_ids("images")))
    oracle = sorted(
        vectors,
        key=lambda i: -float(np.frombuffer(vectors[i], "<f4") @ np.frombuffer(vectors[coffee.id], "<f4")),
    )
    assert [h.id for h in like] == oracle[:6] and like[0].id == coffee.id
    assert like[0].score == pytest.approx(1.0, abs=1e-5)
    nested = indexed.similar(coffee.id, k=6, where=ImageFilter(under=str(photos / "nested")))
    assert nested and all(h.path.startswith(str(photos / "nested") + "/") for h in nested)
    with pytest.raises(ItemNotFoundError, match="no indexed image has id 999999"):
        indexed.similar(999999)
    with pytest.raises(QueryError, match="image id"):
        indexed.similar("1")  # type: ignore[arg-type]


def test_image_filter_takes_ext_as_the_cli_names_it(indexed) -> None:  # noqa: ANN001
    from retrieval import ImageFilter

    assert ImageFilter(ext="jpg,PNG").extensions == (".jpg", ".png")
    assert ImageFilter(ext=("jpg",), extensions=(".png",)).extensions == (".png", ".jpg")
    assert ImageFilter(ext="png") == ImageFilter(extensions=(".png",))  # one filter, however it was spelled
    hits = indexed.search("x", k=10, where=ImageFilter(ext="png"))
    assert hits and all(h.path.endswith(".png") for h in hits)


def test_failed_counts_every_failure_the_report_lists(open_library, photos: Path, tmp_path: Path) -> None:  # noqa: ANN001
    (photos / "broken.jpg").write_text("not an image")
    report = open_library().index([photos, tmp_path / "unplugged"])
    assert report.failed == len(report.failures) == 2
    assert report.missing == (str(tmp_path / "unplugged"),)


def test_a_closed_library_refuses_work_and_closing_twice_is_harmless(open_library, photos: Path) -> None:  # noqa: ANN001
    from retrieval import LibraryClosedError

    lib = open_library()
    lib.index(photos)
    lib.close()
    lib.close()
    for call in (
        lambda: lib.search("x"),
        lambda: lib.search_vector(np.ones(32, np.float32)),
        lambda: lib.similar(1),
        lambda: lib.index(photos),
        lambda: lib.info(),
        lambda: lib.failures(),
        lambda: lib.add_texts(photos / "x.txt"),
        lambda: lib.remove_texts(photos / "x.txt"),
        lambda: lib.embed_text("x"),
        lambda: lib.encoder,
        lambda: lib.count(),
        lambda: lib.duplicates(),
        lambda: lib.exclusions(),
        lambda: lib.add_exclusions(["*.tmp"]),
        lambda: lib.persist_index(),
        lambda: lib.encoder_for("queries"),
    ):
        with pytest.raises(LibraryClosedError, match="closed; open it again"):
            call()


def test_wrong_argument_types_are_typed_errors_naming_the_argument(open_library, photos: Path, tmp_path: Path) -> None:  # noqa: ANN001
    from retrieval import ArgumentTypeError, Library, QueryError, Term

    for kwargs, fragment in (
        ({"directory": 123}, "directory"),
        ({"directory": tmp_path, "model": 123}, "model="),
        ({"directory": tmp_path, "pretrained": 5}, "pretrained="),
        ({"directory": tmp_path, "device": None}, "device="),
    ):
        with pytest.raises(ArgumentTypeError, match=fragment):
            Library.open(**kwargs)
    assert not (tmp_path / "library").exists()
    for kwargs in ({"text": 1}, {"weight": "2"}, {"weight": True}, {"image": 3.5}):
        with pytest.raises(QueryError, match="Term"):
            Term(**kwargs)
    assert Term(text="x", weight=np.float32(2)).weight == 2.0
    lib = open_library()
    for paths in (123, None, [photos, 4]):
        with pytest.raises(ArgumentTypeError, match="index takes"):
            lib.index(paths)
    with pytest.raises(ArgumentTypeError, match="remove_texts"):
        lib.remove_texts(123)
    with pytest.raises(ArgumentTypeError, match="add_texts"):
        lib.add_texts(None)
    for bad in ("x", math.nan, True):
        with pytest.raises(QueryError, match="min_score"):
            lib.search("x", min_score=bad)
        with pytest.raises(QueryError, match="min_score"):
            lib.search_vector(np.ones(32, np.float32), min_score=bad)


def test_bytes_are_one_path_not_a_list_of_bytes(open_library, photos: Path) -> None:  # noqa: ANN001
    lib = open_library()
    report = lib.index(os.fsencode(photos))
    assert report.added == 6 and report.failed == 0


def test_a_vector_that_ranks_nothing_is_refused_not_answered_empty(indexed) -> None:  # noqa: ANN001
    from retrieval import QueryError

    for vector, fragment in (
        (np.full(32, np.nan, np.float32), "NaN"),
        (np.zeros(32, np.float32), "all zeros"),
        (np.ones(31, np.float32), "32 numbers"),
        (np.array([np.inf] + [0.0] * 31), "NaN or infinite"),
    ):
        with pytest.raises(QueryError, match=fragment):
            indexed.search_vector(vector)


def test_a_first_run_that_found_nothing_can_be_discarded(open_library, tmp_path: Path, photos: Path) -> None:  # noqa: ANN001
    empty = tmp_path / "empty"
    empty.mkdir()
    fresh = open_library(tmp_path / "fresh")
    assert fresh.index(empty).added == 0
    assert fresh.discard() and not (tmp_path / "fresh").exists()
    kept = open_library(tmp_path / "kept")
    kept.index(photos)
    assert not kept.discard() and kept.count() == 6  # a library with rows is never deleted
    again = open_library(tmp_path / "kept")
    assert not again.created and not again.discard()
