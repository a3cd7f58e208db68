"""Filters, paging, score cut-off and query algebra, checked against brute force."""

from __future__ import annotations

import os
from datetime import datetime
from pathlib import Path

import numpy as np
import pytest

from retrieval import ImageFilter, Term


@pytest.fixture
def dated_library(open_library, photos: Path):  # noqa: ANN001, ANN201
    """The photos with known dates: one carries EXIF capture time, the rest only mtimes."""
    from PIL import Image

    for day, path in enumerate(sorted(photos.rglob("*.*")), start=1):
        stamp = datetime(2020, 1, day, 12).timestamp()
        os.utime(path, (stamp, stamp))
    exif = Image.Exif()
    exif[0x0132] = "2023:06:01 10:00:00"  # DateTime: capture time, wins over the file's mtime
    with Image.open(next(photos.rglob("astronaut.jpg"))) as image:
        image.save(photos / "nested" / "dated.jpg", exif=exif)
    stamp = datetime(2020, 1, 1).timestamp()
    os.utime(photos / "nested" / "dated.jpg", (stamp, stamp))
    lib = open_library()
    lib.index([photos])
    return lib


def _oracle(lib, query: np.ndarray, keep) -> list[tuple[float, str]]:  # noqa: ANN001
    records = list(lib.catalog.files_under([os.sep]).values())
    vectors = lib.catalog.vectors_for([r.id for r in records])
    scored = [(float(np.frombuffer(vectors[r.id], "<f4") @ query), r.path) for r in records if keep(r)]
    return sorted(scored, reverse=True)


def _when(record) -> datetime:  # noqa: ANN001
    return record.captured_at or datetime.fromtimestamp(record.mtime_ns / 1e9)


@pytest.mark.parametrize(
    ("where", "keep"),
    [
        (
            lambda p: ImageFilter(under=(str(p / "nested"),)),
            lambda p: lambda r: r.path.startswith(str(p / "nested") + "/"),
        ),
        (lambda p: ImageFilter(extensions=(".png",)), lambda p: lambda r: r.path.endswith(".png")),
        (lambda p: ImageFilter(after=datetime(2020, 1, 3)), lambda p: lambda r: _when(r) >= datetime(2020, 1, 3)),
        (lambda p: ImageFilter(before=datetime(2020, 1, 3)), lambda p: lambda r: _when(r) < datetime(2020, 1, 3)),
        (
            lambda p: ImageFilter(
                under=(str(p),), extensions=(".jpg",), after=datetime(2020, 1, 2), before=datetime(2024, 1, 1)
            ),
            lambda p: lambda r: r.path.endswith(".jpg") and datetime(2020, 1, 2) <= _when(r) < datetime(2024, 1, 1),
        ),
    ],
)
def test_filtered_search_equals_brute_force_over_the_filtered_set(dated_library, photos: Path, where, keep) -> None:  # noqa: ANN001
    query = dated_library.embed_text("a photo")
    expected = _oracle(dated_library, query, keep(photos))
    assert expected, "the filter should keep something"
    hits = dated_library.search(text="a photo", k=len(expected) + 3, where=where(photos))
    assert [h.path for h in hits] == [p for _, p in expected]  # k hits whenever k exist, no more
    assert [h.score for h in hits] == pytest.approx([s for s, _ in expected], abs=1e-5)


def test_capture_time_wins_over_mtime(dated_library, photos: Path) -> None:  # noqa: ANN001
    hits = dated_library.search(text="x", k=10, where=ImageFilter(after=datetime(2023, 1, 1)))
    assert [Path(h.path).name for h in hits] == ["dated.jpg"]


def test_paging_concatenates_to_the_unpaged_list(dated_library) -> None:  # noqa: ANN001
    full = dated_library.search(text="a red rocket", k=7)
    pages = [dated_library.search(text="a red rocket", k=3, offset=o) for o in (0, 3, 6)]
    joined = [h for page in pages for h in page]
    assert [(h.rank, h.path) for h in joined] == [(h.rank, h.path) for h in full]


def test_min_score_cuts_the_tail(dated_library) -> None:  # noqa: ANN001
    full = dated_library.search(text="coins", k=7)
    cut = (full[2].score + full[3].score) / 2
    assert dated_library.search(text="coins", k=7, min_score=cut) == full[:3]


def test_query_algebra_equals_the_hand_computed_combination(dated_library, photos: Path) -> None:  # noqa: ANN001
    lib = dated_library
    reference = next(photos.rglob("coffee.*"))
    terms = [
        Term(text="a cup of coffee", weight=2.0),
        Term(text="a cat"),
        Term(image=reference, weight=0.5),
        Term(text="people", weight=-1.0),
    ]
    vectors = [
        lib.embed_text("a cup of coffee"),
        lib.embed_text("a cat"),
        lib.embed_image(reference),
        lib.embed_text("people"),
    ]
    combined = 2.0 * vectors[0] + vectors[1] + 0.5 * vectors[2] - vectors[3]
    combined /= np.linalg.norm(combined)
    np.testing.assert_allclose(lib.embed_terms(terms), combined, atol=1e-6)
    expected = _oracle(lib, combined, lambda r: True)
    assert [h.path for h in lib.search(terms=terms, k=7)] == [p for _, p in expected]


def test_text_and_image_together_and_bad_algebra(dated_library, photos: Path) -> None:  # noqa: ANN001
    from retrieval import QueryError

    reference = next(photos.rglob("chelsea.*"))
    both = dated_library.search(text="a cat", image=reference, k=1)
    assert both and both[0].score > 0
    with pytest.raises(QueryError, match="cancel"):
        dated_library.search(terms=[Term(text="a cat"), Term(text="a cat", weight=-1.0)])
    with pytest.raises(QueryError):
        dated_library.search(terms=[Term()])
    with pytest.raises(QueryError):
        dated_library.search(text="x", offset=-1)


def test_option_parsing() -> None:
    from retrieval import QueryError
    from retrieval.search.query import build_filter, build_terms

    where = build_filter(["~/pics"], "2024-06-01", "2024-06-02T18:30", ["JPG,.png", " heic "])
    assert where.under == (os.path.expanduser("~/pics"),)
    assert where.extensions == (".heic", ".jpg", ".png")
    assert (where.after, where.before) == (datetime(2024, 6, 1), datetime(2024, 6, 2, 18, 30))
    terms = build_terms(["beach", "sunset"], ["ref.jpg"], ["people"], [], ["2:beach", "0.5:people"])
    assert [(t.text, t.image, t.weight) for t in terms] == [
        ("beach", None, 2.0),
        ("sunset", None, 1.0),
        (None, "ref.jpg", 1.0),
        ("people", None, -0.5),
    ]
    for bad in (
        lambda: build_filter(after="2024-06-02", before="2024-06-01"),
        lambda: build_terms(["a"], weights=["-1:a"]),
        lambda: build_terms([], not_texts=["a"]),
    ):
        with pytest.raises(QueryError):
            bad()


@pytest.mark.parametrize("number", ["inf", "Infinity", "1e309", "1e308", "1000001", "nan", "-inf", "0"])
def test_weights_must_be_finite_positive_and_at_most_a_million(number: str) -> None:
    from retrieval import QueryError
    from retrieval.search.query import build_terms, parse_weights

    assert parse_weights(["1e6:a", "0.001:b"]) == {"a": 1e6, "b": 0.001}
    with pytest.raises(QueryError, match="positive number at most 1,000,000"):
        build_terms(["a"], weights=[f"{number}:a"])


def test_a_sum_that_overflows_is_refused_not_searched_with_nan() -> None:
    from retrieval import QueryError
    from retrieval.search.query_vector import embed_terms, normalised

    class Fixed:
        def encode_texts(self, texts):  # noqa: ANN001, ANN202
            return np.ones((len(texts), 4), np.float32) / 2

    for weight in (1e308, float("inf"), float("-inf"), float("nan"), 1e6 + 1):
        with pytest.raises(QueryError, match="weight is at most 1,000,000 either way"):
            embed_terms(Fixed, [Term(text="a", weight=weight), Term(text="b", weight=1.0)], 4)
    assert embed_terms(Fixed, [Term(text="a", weight=1e6), Term(text="b", weight=1e6)], 4) == pytest.approx(
        np.full(4, 0.5)
    )
    with pytest.raises(QueryError, match="too large to combine"):
        normalised(np.array([1e308, 1e308]))  # what the server's own sum ends with
    with pytest.raises(QueryError, match="too large to combine"):
        normalised(np.array([np.nan, 1.0]))


@pytest.mark.parametrize(
    "value",
    ["0001-01-01", "0001-01-01T00:00:00+14:00", "1899-12-31", "9999-12-31T23:00-12:00", "1900-01-01T00:00+14:00"],
)
def test_dates_outside_the_years_a_timestamp_holds_are_refused(value: str) -> None:
    from retrieval import QueryError
    from retrieval.search.query import build_filter

    with pytest.raises(QueryError, match=r"--after takes a date from 1900-01-01 to 9999-12-31"):
        build_filter(after=value)
    with pytest.raises(QueryError, match="--before takes a date from 1900"):
        build_filter(before=value)
    assert build_filter(after="1900-01-01", before="9999-12-31").before == datetime(9999, 12, 31)


def test_edge_dates_filter_the_library(dated_library) -> None:  # noqa: ANN001
    from retrieval.search.query import build_filter

    everything = dated_library.search(text="a photo", k=100)
    assert (
        dated_library.search(text="a photo", k=100, where=build_filter(after="1900-01-01", before="9999-12-31"))
        == everything
    )


def test_query_text_that_is_not_utf8_is_refused(open_library) -> None:  # noqa: ANN001
    from retrieval import QueryError
    from retrieval.search.query import build_filter, build_terms

    with pytest.raises(QueryError, match="the query text is not valid UTF-8"):
        build_terms(["red \udcff circle"])
    with pytest.raises(QueryError, match="the --not text is not valid UTF-8"):
        build_terms(["red"], not_texts=["\ud800"])
    with pytest.raises(QueryError, match="the query text is not valid UTF-8"):
        open_library().search(text="\ud800 red", k=2)  # the Python API, past build_terms
    with pytest.raises(QueryError, match="--under .* is not valid UTF-8"):
        build_filter(under=["/photos/\udcff"])
    with pytest.raises(QueryError, match="--ext is not valid UTF-8"):
        build_filter(extensions=["jp\udcffg"])


def test_a_query_image_whose_name_is_not_utf8_is_decoded_not_looked_up(
    open_library, photos: Path, tmp_path: Path
) -> None:  # noqa: ANN001
    import shutil

    lib = open_library()
    lib.index([photos])
    source = next(photos.rglob("coffee.*"))
    odd = os.fsdecode(
        os.fsencode(tmp_path) + b"/caf\xff" + os.fsencode(source.suffix)
    )  # a name with a byte that is not UTF-8
    shutil.copy(source, os.fsencode(odd))
    assert [h.path for h in lib.search(image=odd, k=1)] == [str(source)]


def test_min_score_nan_is_refused() -> None:
    from retrieval import QueryError
    from retrieval.search.query import check_min_score

    assert check_min_score(None) is None and check_min_score(0.25) == 0.25
    with pytest.raises(QueryError, match="--min-score takes a number"):
        check_min_score(float("nan"))


def test_cli_refuses_bad_weights_dates_and_texts_with_exit_2(
    tmp_path: Path, tiny_model_dir: Path, photos: Path
) -> None:
    from typer.testing import CliRunner

    import cli

    runner = CliRunner()
    library = str(tmp_path / "library")
    assert (
        runner.invoke(
            cli.app, ["index", str(photos), "--model", f"local-dir:{tiny_model_dir}", "--library", library]
        ).exit_code
        == 0
    )
    cases = [
        (["circle", "--weight", "inf:circle"], "at most 1,000,000"),
        (["circle", "--weight", "1e308:circle"], "at most 1,000,000"),
        (["circle", "--weight", "nan:circle"], "at most 1,000,000"),
        (["red", "--after", "0001-01-01"], "1900-01-01 to 9999-12-31"),
        (["red", "--before", "0001-01-01T00:00:00+14:00"], "1900-01-01 to 9999-12-31"),
        (["red \udcff circle"], "not valid UTF-8"),  # what argv holds for the byte 0xff
        (["red", "--under", "/photos/\udcff"], "not valid UTF-8"),
    ]
    for args, message in cases:
        result = runner.invoke(cli.app, ["search", *args, "--library", library, "-k", "2"])
        assert result.exit_code == 2, (args, result.output)
        assert message in result.stderr and "no results" not in result.stderr


def test_a_year_or_a_month_is_its_first_day_after_and_its_end_before() -> None:
    from retrieval import QueryError
    from retrieval.search.query import build_filter

    assert build_filter(after="2024").after == datetime(2024, 1, 1)
    assert build_filter(after="2024-06").after == datetime(2024, 6, 1)
    # --before excludes its bound, so a year or month given to it ends where the next one starts
    assert build_filter(before="2024").before == datetime(2025, 1, 1)
    assert build_filter(before="2024-06").before == datetime(2024, 7, 1)
    assert build_filter(before="2024-12").before == datetime(2025, 1, 1)
    assert build_filter(before="2024-06-15").before == datetime(2024, 6, 15)  # a full date is that moment
    whole = build_filter(after="2024", before="2024")  # all of 2024, not refused as empty
    assert (whole.after, whole.before) == (datetime(2024, 1, 1), datetime(2025, 1, 1))
    assert build_filter(before="9999").before == datetime(9999, 12, 31, 23, 59, 59, 999999)
    for bad in ("2024-13", "24", "2024-6", "1899", "2024-00"):
        with pytest.raises(QueryError, match="--after takes a date"):
            build_filter(after=bad)
        if bad != "1899":  # --before 1899 is before 1900-01-01: a date xmr takes
            with pytest.raises(QueryError, match="--before takes a date"):
                build_filter(before=bad)


def test_search_help_shows_the_date_formats() -> None:
    from typer.testing import CliRunner

    import cli

    shown = " ".join(CliRunner().invoke(cli.app, ["search", "--help"], env={"COLUMNS": "200"}).output.split())
    assert "YYYY, YYYY-MM, YYYY-MM-DD or YYYY-MM-DDTHH:MM" in shown
    assert "--before 2024 keeps all of 2024" in shown


def test_an_empty_search_names_the_filter_that_matched_nothing(dated_library, photos: Path) -> None:  # noqa: ANN001
    from retrieval.search.query import build_filter

    lib = dated_library
    cases = [
        (build_filter(under=["/nonexistent"]), None, 0, "no indexed image is under /nonexistent."),
        (build_filter(extensions=["tiff"]), None, 0, "no indexed image has the extension .tiff."),
        (build_filter(after="2999"), None, 0, "no indexed image was taken on or after 2999-01-01"),
        (build_filter(after="2021", before="2022-12"), None, 0, "from 2021-01-01 to before 2023-01-01"),
        (  # each part matches something, together nothing: the dated JPEG is not a PNG
            build_filter(after="2023-01", extensions=["png"]),
            None,
            0,
            "passes all the filters together",
        ),
        (build_filter(contains=["zebracrossing"]), None, 0, "no indexed image holds the words 'zebracrossing'"),
        (build_filter(under=[str(photos / "nested")]), None, 50, "skips them all"),
        (ImageFilter(), 0.99, 0, "no image scores 0.99 or more"),
    ]
    for where, min_score, offset, fragment in cases:
        assert lib.search("a photo", k=5, where=where, min_score=min_score, offset=offset) == []
        assert fragment in lib.explain_no_hits(where, min_score=min_score, offset=offset)
    assert lib.count(build_filter(under=[str(photos / "nested")])) == len(list((photos / "nested").iterdir()))
