"""Query input the API must refuse with 422 and a sentence, never answer with 500 or an empty page."""

from __future__ import annotations

import pytest

from retrieval.serve.queries import json_safe


def _post(client, body: bytes):  # noqa: ANN001, ANN202
    return client.post("/api/search", content=body, headers={"content-type": "application/json"})


@pytest.mark.parametrize("weight", ["inf", "Infinity", "1e308", "1e309", "nan", "1000001"])
def test_weights_that_are_not_finite_or_too_large_are_422(client, weight: str) -> None:  # noqa: ANN001
    response = client.post("/api/search", json={"q": ["red"], "weights": [f"{weight}:red"], "k": 3})
    assert response.status_code == 422 and "at most 1,000,000" in response.json()["detail"]


def test_the_largest_weight_still_searches(client) -> None:  # noqa: ANN001
    response = client.post("/api/search", json={"q": ["red", "a cat"], "weights": ["1e6:red"], "k": 3})
    assert response.status_code == 200 and len(response.json()["hits"]) == 3


@pytest.mark.parametrize("when", ["0001-01-01", "0001-01-01T00:00:00+14:00", "9999-12-31T23:00-12:00"])
def test_dates_beyond_what_a_timestamp_holds_are_422(client, when: str) -> None:  # noqa: ANN001
    for field in ("after", "before"):
        response = client.post("/api/search", json={"q": ["red"], field: when})
        assert response.status_code == 422 and "from 1900-01-01 to 9999-12-31" in response.json()["detail"]


def test_min_score_nan_is_422(client) -> None:  # noqa: ANN001
    assert client.get("/api/search", params={"q": "red", "min_score": "nan"}).status_code == 422
    response = _post(client, b'{"q": ["red"], "min_score": NaN}')
    assert response.status_code == 422 and "min_score takes a number" in response.json()["detail"]


def test_the_searcher_refuses_text_that_is_not_utf8(shared_library) -> None:  # noqa: ANN001
    from retrieval import QueryError
    from retrieval.serve import ServeConfig
    from retrieval.serve.queries import Searcher
    from retrieval.serve.schemas import SearchRequest

    searcher = Searcher(shared_library, ServeConfig())
    for request in (SearchRequest(q=["\ud800 red"]), SearchRequest(q=["red"], not_=["\udcff"])):
        with pytest.raises(QueryError, match="not valid UTF-8"):
            searcher.search_images(request)
        with pytest.raises(QueryError, match="not valid UTF-8"):
            searcher.search_texts(request)


@pytest.mark.parametrize(
    "body",
    [
        b'{"q": ["\\ud800 red"], "k": 2}',
        b'{"images": ["\\ud800"]}',
        b'{"q": ["red"], "k": NaN}',
        b'{"q": ["red"], "bogus\\udcff": 1}',
    ],
)
def test_validation_errors_echoing_what_json_cannot_carry_are_422(client, body: bytes) -> None:  # noqa: ANN001
    """Needs app.py's RequestValidationError handler (json_safe): FastAPI's own answers 500 here."""
    response = _post(client, body)
    assert response.status_code == 422, response.text
    assert isinstance(response.json()["detail"], list)


def test_json_safe_escapes_lone_surrogates_and_names_non_finite_numbers() -> None:
    import json

    errors = [
        {"loc": ("body", "q", 0), "input": "\ud800 red", "ctx": {"limit": float("nan")}},
        {"input": float("-inf"), "n": 2, "ok": None},
    ]
    safe = json_safe(errors)
    assert safe == [
        {"loc": ["body", "q", 0], "input": "\\ud800 red", "ctx": {"limit": "nan"}},
        {"input": "-inf", "n": 2, "ok": None},
    ]
    json.dumps(safe, ensure_ascii=False, allow_nan=False).encode("utf-8")  # what JSONResponse does
