"""The API's keyword and hybrid search: the same hits as the library, with the matched box."""

from __future__ import annotations

from pathlib import Path

import pytest

from index.records import ImageFilter


def test_hybrid_search_answers_like_the_library_with_the_match(ocr_client, ocr_library) -> None:  # noqa: ANN001
    expected = ocr_library.search(text="receipt 42.50", k=5)
    body = ocr_client.post("/api/search", json={"q": ["receipt 42.50"], "k": 5}).json()
    assert [h["id"] for h in body["hits"]] == [h.id for h in expected]
    assert [h["score"] for h in body["hits"]] == pytest.approx([h.score for h in expected], abs=1e-6)
    top = body["hits"][0]
    assert Path(top["path"]).name == "scan.jpg" and top["keyword_score"] > 0 and top["dual_score"] is not None
    assert top["match"]["source"] == "ocr" and top["match"]["text"].lower() == "receipt"
    xs, ys = top["match"]["box"][0::2], top["match"]["box"][1::2]
    left, upper, right, lower = ocr_library.receipt_box
    assert abs(min(xs) - left) < 0.05 and abs(max(xs) - right) < 0.05 and abs(min(ys) - upper) < 0.05


def test_keyword_mode_contains_and_sort_through_get_and_post(ocr_client, ocr_library) -> None:  # noqa: ANN001
    got = ocr_client.get("/api/search", params={"q": "42.50", "mode": "keyword"}).json()["hits"]
    assert [Path(h["path"]).name for h in got] == ["scan.jpg"] and got[0]["score"] == got[0]["keyword_score"]
    body = {"q": ["a cup of coffee"], "contains": ["receipt"], "k": 10, "mode": "semantic"}
    contained = ocr_client.post("/api/search", json=body).json()["hits"]
    assert [h["id"] for h in contained] == [
        h.id
        for h in ocr_library.search(
            text="a cup of coffee", k=10, where=ImageFilter(contains=("receipt",)), mode="semantic"
        )
    ]
    assert [Path(h["path"]).name for h in contained] == ["scan.jpg"]
    newest = ocr_client.post("/api/search", json={"q": ["a photo"], "k": 4, "sort": "-date"}).json()["hits"]
    assert [h["id"] for h in newest] == [h.id for h in ocr_library.search(text="a photo", k=4, sort="-date")]
    refused = ocr_client.post("/api/search", json={"q": ["x"], "mode": "fuzzy"})
    assert refused.status_code == 422
    assert ocr_client.post("/api/search", json={"q": ["a"], "contains": ["!!"]}).status_code == 422
