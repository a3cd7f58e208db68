"""The HTTP API against the library it serves: same rankings, same algebra, paging, items."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest

from retrieval import ImageFilter, Term


def _ids(response) -> list[int]:  # noqa: ANN001
    assert response.status_code == 200, response.text
    return [hit["id"] for hit in response.json()["hits"]]


def _jpeg(path: Path) -> bytes:
    return path.read_bytes()


def test_text_search_ranks_like_the_library(client, shared_library) -> None:  # noqa: ANN001
    expected = shared_library.search(text="a cat on a sofa", k=5)
    response = client.get("/api/search", params={"q": "a cat on a sofa", "k": 5})
    assert _ids(response) == [h.id for h in expected]
    scores = [hit["score"] for hit in response.json()["hits"]]
    assert scores == pytest.approx([h.score for h in expected], abs=1e-5)
    hit = response.json()["hits"][0]
    assert hit["thumbnail"] == f"/api/items/{hit['id']}/thumbnail" and hit["file"] == f"/api/items/{hit['id']}/file"


def test_query_algebra_and_filters_match_the_cli_terms(client, shared_library, served_photos: Path) -> None:  # noqa: ANN001
    body = {
        "q": ["a cat", "a rocket"],
        "not": ["coffee"],
        "weights": ["2:a rocket"],
        "ext": ["jpg"],
        "under": [str(served_photos)],
        "k": 4,
    }
    terms = [Term(text="a cat"), Term(text="a rocket", weight=2.0), Term(text="coffee", weight=-1.0)]
    where = ImageFilter(under=(str(served_photos),), extensions=(".jpg",))
    expected = shared_library.search(terms=terms, where=where, k=4)
    got = client.post("/api/search", json=body)
    assert _ids(got) == [h.id for h in expected]
    assert all(hit["path"].endswith(".jpg") for hit in got.json()["hits"])


def test_more_like_this_uses_the_stored_vector_brute_force(client, shared_library) -> None:  # noqa: ANN001
    first = client.get("/api/search", params={"q": "an astronaut", "k": 1}).json()["hits"][0]["id"]
    vectors = shared_library.catalog.vectors_for(shared_library.catalog.vector_ids("images").tolist())
    query = np.frombuffer(vectors[first], "<f4")
    oracle = sorted(vectors, key=lambda i: -float(np.frombuffer(vectors[i], "<f4") @ query))
    similar = client.get(f"/api/items/{first}/similar", params={"k": 4})
    assert _ids(similar) == oracle[:4] and similar.json()["hits"][0]["score"] == pytest.approx(1.0, abs=1e-5)
    # The same through the algebra: like one item, unlike another, weighed by #ID.
    other = oracle[-1]
    body = {"like": [first], "unlike": [other], "weights": [f"3:#{first}"], "k": 3}
    mixed = 3 * query - np.frombuffer(vectors[other], "<f4")
    mixed = mixed / np.linalg.norm(mixed)
    expected = sorted(vectors, key=lambda i: -float(np.frombuffer(vectors[i], "<f4") @ mixed))[:3]
    assert _ids(client.post("/api/search", json=body)) == expected


def test_pages_continue_and_the_last_page_says_so(client, shared_library) -> None:  # noqa: ANN001
    total = len(shared_library.images.index)
    whole = client.get("/api/search", params={"q": "a photo", "k": total}).json()
    assert whole["next_offset"] is None or len(whole["hits"]) == total
    first = client.post("/api/search", json={"q": ["a photo"], "k": 3}).json()
    second = client.post("/api/search", json={"q": ["a photo"], "k": 3, "offset": first["next_offset"]}).json()
    assert [h["id"] for h in first["hits"] + second["hits"]] == [h["id"] for h in whole["hits"]][:6]
    assert [h["rank"] for h in second["hits"]] == [4, 5, 6]
    last = client.post("/api/search", json={"q": ["a photo"], "k": 5, "offset": total - 2}).json()
    assert len(last["hits"]) == 2 and last["next_offset"] is None


def test_uploaded_image_searches_and_pages_by_its_id(client, shared_library, served_photos: Path) -> None:  # noqa: ANN001
    from PIL import Image

    photo = next(served_photos.rglob("coffee.*"))
    expected = [h.id for h in shared_library.search(image=Image.open(photo), k=3)]
    one_shot = client.post("/api/search/image", files={"file": ("q.jpg", _jpeg(photo), "image/jpeg")}, data={"k": "3"})
    assert _ids(one_shot) == expected
    upload = client.post("/api/uploads", files={"file": ("q.jpg", _jpeg(photo), "image/jpeg")}).json()
    assert upload["id"].startswith("up-") and upload["width"] > 0
    page2 = client.post("/api/search", json={"images": [upload["id"]], "k": 3, "offset": 3}).json()
    assert [h["rank"] for h in page2["hits"]] == [4, 5, 6][: len(page2["hits"])]
    combined = client.post(
        "/api/search", json={"images": [upload["id"]], "q": ["a cup"], "weights": [f"2:{upload['id']}"], "k": 3}
    )
    assert _ids(combined) == [
        h.id for h in shared_library.search(terms=[Term(image=Image.open(photo), weight=2), Term(text="a cup")], k=3)
    ]


def test_image_to_text_for_an_item_and_for_a_query(client, shared_library) -> None:  # noqa: ANN001
    sideways = next(h for h in shared_library.search(text="x", k=20) if h.path.endswith("sideways.jpg"))
    texts = client.get(f"/api/items/{sideways.id}/texts", params={"k": 10}).json()["hits"]
    assert any(t["text"] == "an astronaut lying on her side" for t in texts)  # its sidecar caption is in the corpus
    by_text = client.post("/api/search/texts", json={"q": ["a cup of coffee"], "k": 2}).json()["hits"]
    assert [t["id"] for t in by_text] == [t.id for t in shared_library.search_texts(text="a cup of coffee", k=2)]
    refused = client.post("/api/search/texts", json={"q": ["coffee"], "ext": ["jpg"]})
    assert refused.status_code == 422 and "do not apply" in refused.json()["detail"]


def test_item_metadata_thumbnail_and_original(make_client, shared_library, tmp_path: Path) -> None:  # noqa: ANN001
    from PIL import Image

    client = make_client(cache_dir=tmp_path / "thumbs")
    sideways = next(h for h in shared_library.search(text="x", k=20) if h.path.endswith("sideways.jpg"))
    meta = client.get(f"/api/items/{sideways.id}").json()
    assert (
        meta["path"] == sideways.path
        and (meta["width"], meta["height"]) == (200, 300)
        and meta["media_type"] == "image/jpeg"
    )
    thumb = client.get(f"/api/items/{sideways.id}/thumbnail")
    assert thumb.status_code == 200 and thumb.headers["content-type"] == "image/jpeg"
    with Image.open(io.BytesIO(thumb.content)) as image:
        assert image.height > image.width  # EXIF orientation applied: upright, not as stored
        assert max(image.size) <= 256
    cached = list((tmp_path / "thumbs").rglob("*-256.jpg"))
    assert len(cached) == 1
    stamp = cached[0].stat().st_mtime_ns
    assert client.get(f"/api/items/{sideways.id}/thumbnail").content == thumb.content
    assert cached[0].stat().st_mtime_ns == stamp  # served from the cache, not made again
    large = client.get(f"/api/items/{sideways.id}/thumbnail", params={"size": 1000})
    with Image.open(io.BytesIO(large.content)) as image:
        assert image.size == (200, 300)  # never enlarged
    original = client.get(f"/api/items/{sideways.id}/file")
    assert original.content == Path(sideways.path).read_bytes()


def test_missing_items_and_files_are_404_with_a_reason(fresh_client, fresh_library) -> None:  # noqa: ANN001
    assert fresh_client.get("/api/items/999999").status_code == 404
    assert fresh_client.get("/api/items/999999/thumbnail").status_code == 404
    assert fresh_client.post("/api/search", json={"like": [999999]}).status_code == 404
    hit = fresh_library.search(text="x", k=1)[0]
    Path(hit.path).unlink()
    gone = fresh_client.get(f"/api/items/{hit.id}/file")
    assert gone.status_code == 404 and "xmr index" in gone.json()["detail"]
    assert fresh_client.get(f"/api/items/{hit.id}/thumbnail").status_code == 404


def test_new_images_from_another_index_run_appear_without_restart(
    fresh_client, fresh_library, open_library, tmp_path: Path
) -> None:  # noqa: ANN001
    from PIL import Image

    before = fresh_client.get("/api/health").json()["images"]
    extra = tmp_path / "more"
    extra.mkdir()
    with Image.open(next((fresh_library.layout.root.parent / "photos").rglob("rocket.*"))) as image:
        image.convert("RGB").transpose(Image.Transpose.FLIP_LEFT_RIGHT).save(extra / "rocket-mirrored.png")
    writer = open_library(
        fresh_library.layout.root
    )  # a second handle: its commits reach the server only through the catalog
    writer.index([extra])
    hits = fresh_client.get("/api/search", params={"q": "a rocket", "k": 50}).json()["hits"]
    assert any(h["path"].endswith("rocket-mirrored.png") for h in hits)
    assert fresh_client.get("/api/health").json()["images"] == before + 1


def test_health_and_info(client, shared_library) -> None:  # noqa: ANN001
    assert client.get("/api/health").json() == {"status": "ok", "images": len(shared_library.images.index)}
    info = client.get("/api/info").json()
    assert (
        info["images"] == shared_library.info().images and info["reranker"] is None and info["limits"]["max_k"] == 100
    )


def test_the_page_and_its_assets_are_served(client) -> None:  # noqa: ANN001
    page = client.get("/")
    assert page.status_code == 200 and 'id="q"' in page.text and "/static/app.js" in page.text
    assert client.get("/static/app.js").headers["content-type"].startswith("text/javascript")
    assert client.get("/static/style.css").status_code == 200
    assert "/api/search" in client.get("/openapi.json").json()["paths"]


def test_an_exactly_full_last_page_has_no_next_page(client, shared_library) -> None:  # noqa: ANN001
    total = len(shared_library.images.index)
    whole = client.get("/api/search", params={"q": "a photo", "k": total}).json()
    assert len(whole["hits"]) == total and whole["next_offset"] is None  # a Next would lead to an empty page
    before_last = client.post("/api/search", json={"q": ["a photo"], "k": total - 1}).json()
    assert len(before_last["hits"]) == total - 1 and before_last["next_offset"] == total - 1
    texts = shared_library.info().texts
    all_texts = client.post("/api/search/texts", json={"q": ["a photo"], "k": texts}).json()
    assert len(all_texts["hits"]) == texts and all_texts["next_offset"] is None


def test_an_empty_answer_says_which_filter_matched_nothing(client) -> None:  # noqa: ANN001
    body = {"q": ["a cat"], "under": ["/nonexistent"]}
    answer = client.post("/api/search", json=body).json()
    assert answer["hits"] == [] and answer["note"] == "no indexed image is under /nonexistent."
    assert client.post("/api/search", json={"q": ["a cat"]}).json()["note"] is None


def test_the_favicon_is_an_icon(client) -> None:  # noqa: ANN001
    import io

    from PIL import Image

    answer = client.get("/favicon.ico")
    assert answer.status_code == 200 and answer.headers["content-type"] == "image/x-icon"
    with Image.open(io.BytesIO(answer.content)) as icon:
        assert icon.format == "ICO" and (32, 32) in icon.info["sizes"]
