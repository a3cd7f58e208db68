"""The rerank flag: off, the dual ranking; on, the library's reranking path with the server's reranker.

A fake reranker (the Reranker protocol: rerank_images / rerank_texts) stands in for a
trained one, so the test checks the server's wiring, not a model.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pytest

from retrieval.library import Library
from retrieval.serve.queries import accepts_reranker

pytestmark = pytest.mark.skipif(
    not accepts_reranker(Library.search), reason="this xmr's Library.search takes no reranker yet"
)


class KeywordReranker:
    """Probability 0.99 for images whose file name holds a word of the text; else a squashed dual score."""

    name = "keyword-fake"

    def __init__(self) -> None:
        self.calls: list[tuple[str, int]] = []

    def rerank_images(self, text: str, images: Sequence, dual: np.ndarray) -> np.ndarray:
        self.calls.append((text, len(images)))
        words = set(text.lower().split())
        hit = np.array([any(w in Path(ref.path).stem for w in words) for ref in images])
        return np.where(hit, 0.99, 0.5 / (1 + np.exp(-dual))).astype(np.float32)

    def rerank_texts(self, image, texts: Sequence[str], dual: np.ndarray) -> np.ndarray:  # noqa: ANN001
        stem = Path(image.path).stem if image.path else ""
        return np.array([0.99 if stem and stem in t else 0.1 for t in texts], np.float32)


@pytest.fixture(scope="module")
def rr_client(make_client):  # noqa: ANN001, ANN201
    reranker = KeywordReranker()
    return make_client(reranker=reranker, rerank_k=7), reranker


def test_rerank_off_is_the_dual_ranking_and_on_uses_the_reranker(rr_client, shared_library) -> None:  # noqa: ANN001
    client, reranker = rr_client
    plain = client.post("/api/search", json={"q": ["rocket"], "k": 3}).json()
    assert not plain["reranked"] and [h["id"] for h in plain["hits"]] == [
        h.id for h in shared_library.search(text="rocket", k=3)
    ]
    assert all(h["dual_score"] is None for h in plain["hits"])
    ranked = client.post("/api/search", json={"q": ["rocket"], "not": ["coffee"], "k": 3, "rerank": True}).json()
    assert ranked["reranked"] and reranker.calls[-1] == ("rocket", 7)  # rerank_k (7) candidates, not k (3)
    top = ranked["hits"][0]
    assert top["name"].startswith("rocket") and top["score"] == pytest.approx(0.99) and -1 <= top["dual_score"] <= 1
    scores = [h["score"] for h in ranked["hits"]]
    assert scores == sorted(scores, reverse=True)
    assert (
        client.get("/api/search", params={"q": "rocket", "rerank": "true"})
        .json()["hits"][0]["name"]
        .startswith("rocket")
    )
    assert client.get("/api/info").json()["reranker"] == "keyword-fake"


def test_rerank_needs_one_text_and_says_so(rr_client) -> None:  # noqa: ANN001
    client, _ = rr_client
    response = client.post("/api/search", json={"q": ["rocket", "cat"], "rerank": True})
    assert response.status_code == 422 and "exactly one text" in response.json()["detail"]


def test_reranked_image_to_text_for_an_item(rr_client, shared_library) -> None:  # noqa: ANN001
    client, _ = rr_client
    coffee = next(h.id for h in shared_library.search(text="x", k=20) if Path(h.path).stem == "coffee")
    hits = client.post("/api/search/texts", json={"like": [coffee], "k": 2, "rerank": True}).json()
    assert (
        hits["reranked"]
        and hits["hits"][0]["text"] == "a cup of coffee"
        and hits["hits"][0]["score"] == pytest.approx(0.99)
    )
    refused = client.post("/api/search/texts", json={"q": ["coffee"], "rerank": True})
    assert refused.status_code == 422 and "one query image" in refused.json()["detail"]
