"""GET /api/duplicates and the /duplicates page against Library.duplicates."""

from __future__ import annotations

import shutil
from pathlib import Path

from retrieval import DuplicateConfig


def test_api_answers_what_the_library_finds_and_keeps_it_until_the_library_changes(fresh_client, fresh_library) -> None:  # noqa: ANN001
    photos = fresh_library.layout.root.parent / "photos"
    original = next(photos.rglob("coffee.*"))
    (photos / "copies").mkdir()
    shutil.copy2(original, photos / "copies" / original.name)
    fresh_library.index([photos])
    expected = fresh_library.duplicates(DuplicateConfig(tiers=("exact",)))
    assert [len(g.members) for g in expected.groups] == [2]

    first = fresh_client.get("/api/duplicates", params={"tier": "exact"})
    assert first.status_code == 200, first.text
    data = first.json()
    assert data["total"] == 1 and data["next_offset"] is None and data["images"] == expected.images
    (group,) = data["groups"]
    assert group["tier"] == "exact" and group["reason"] == expected.groups[0].reason
    assert [m["path"] for m in group["members"]] == [m.path for m in expected.groups[0].members]
    assert group["keeper"] == group["members"][0]["id"] and group["members"][0]["relation"] == "keeper"
    member = group["members"][1]
    assert member["thumbnail"] == f"/api/items/{member['id']}/thumbnail" and member["name"] == original.name
    assert fresh_client.get(member["thumbnail"]).status_code == 200
    assert data["took_ms"] > 0

    again = fresh_client.get("/api/duplicates", params={"tier": "exact"}).json()
    assert again["took_ms"] == 0 and again["groups"] == data["groups"]  # the kept answer

    shutil.copy2(original, photos / "copies" / f"again-{original.name}")
    fresh_library.index([photos])  # a new generation: found again
    changed = fresh_client.get("/api/duplicates", params={"tier": "exact"}).json()
    assert changed["took_ms"] > 0 and [len(g["members"]) for g in changed["groups"]] == [3]
    assert all(Path(m["path"]).exists() for g in changed["groups"] for m in g["members"])


def test_api_pages_and_refuses_bad_settings(fresh_client, fresh_library) -> None:  # noqa: ANN001
    photos = fresh_library.layout.root.parent / "photos"
    for source in sorted(p for p in photos.rglob("*.*") if p.suffix in (".jpg", ".png"))[:3]:
        shutil.copy2(source, source.with_name(f"copy-{source.name}"))
    fresh_library.index([photos])
    whole = fresh_client.get("/api/duplicates", params={"tier": "exact"}).json()
    assert whole["total"] == 3
    page = fresh_client.get("/api/duplicates", params={"tier": "exact", "limit": 2}).json()
    rest = fresh_client.get(
        "/api/duplicates", params={"tier": "exact", "limit": 2, "offset": page["next_offset"]}
    ).json()
    assert page["groups"] + rest["groups"] == whole["groups"] and rest["next_offset"] is None
    bad = fresh_client.get("/api/duplicates", params={"tier": "blurry"})
    assert bad.status_code == 422 and "exact, near, similar" in bad.json()["detail"]
    assert fresh_client.get("/api/duplicates", params={"min_score": 2}).status_code == 422


def test_page_is_served(client) -> None:  # noqa: ANN001
    page = client.get("/duplicates")
    assert page.status_code == 200 and "/static/duplicates.js" in page.text
    assert client.get("/static/duplicates.js").headers["content-type"].startswith("text/javascript")
    assert 'href="/duplicates"' in client.get("/").text
