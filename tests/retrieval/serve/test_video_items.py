"""Videos over HTTP: hits with start and end, a thumbnail per moment, the file by byte ranges, the same checks."""

from __future__ import annotations

import io
import os
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from retrieval.serve.ranges import byte_range
from tests.helpers.videos import PHONE, scikit_photos, write_slideshow

pytest.importorskip("av", reason="the video extra (PyAV) is not installed")
pytest.importorskip("fastapi", reason="the server tests need the serve extra")


@pytest.fixture
def video_client(tmp_path: Path, tiny_encoder):  # noqa: ANN001, ANN201
    """A served library of one video (three photos in turn) and one photo."""
    from fastapi.testclient import TestClient

    from retrieval import Library
    from retrieval.serve import ServeConfig, create_app

    media = tmp_path / "media"
    media.mkdir()
    photos = list(scikit_photos().items())
    write_slideshow(media / "film.mp4", photos[:3], (3.0, 4.0, 3.0), size=(128, 96), gop=PHONE)
    photos[4][1].save(media / "rocket.jpg")
    lib = Library.open(tmp_path / "library", model=tiny_encoder)
    lib.index([media])
    client = TestClient(create_app(lib, ServeConfig(cache_dir=tmp_path / "thumbs")), base_url="http://127.0.0.1:8765")
    with client:
        yield client, lib, media
    lib.close()


def _video_hit(client) -> dict:  # noqa: ANN001
    reply = client.post("/api/search", json={"q": ["a photo"], "k": 10, "media": "videos"})
    assert reply.status_code == 200, reply.text
    (hit,) = reply.json()["hits"]  # one video: one hit, whatever its number of moments
    return hit


def test_video_hits_carry_their_moment_and_a_thumbnail_of_it(video_client) -> None:  # noqa: ANN001
    client, lib, media = video_client
    hit = _video_hit(client)
    assert hit["media"] == "video" and hit["path"] == str(media / "film.mp4")
    assert 0.0 <= hit["start"] < hit["end"] <= 10.05 and hit["video_id"] is not None
    every = client.post("/api/search", json={"q": ["a photo"], "k": 10}).json()["hits"]
    assert sorted(h["media"] for h in every) == ["photo", "video"]
    thumbs = {}
    for moment in lib.catalog.moments_of(hit["video_id"]):
        item = client.get(f"/api/items/{moment.id}").json()
        assert (item["media"], item["start"], item["end"], item["media_type"]) == (
            "video",
            moment.start,
            moment.end,
            "video/mp4",
        )
        reply = client.get(f"/api/items/{moment.id}/thumbnail")
        assert reply.status_code == 200 and reply.headers["content-type"] == "image/jpeg"
        thumbs[moment.start] = np.asarray(Image.open(io.BytesIO(reply.content)).convert("L"), np.float32)
    assert len(thumbs) >= 3  # one per moment, each its own frame
    first, *rest = thumbs.values()
    assert any(np.abs(first - other).mean() > 10 for other in rest if other.shape == first.shape)
    similar = client.get(f"/api/items/{hit['id']}/similar?k=1").json()["hits"]
    assert similar[0]["id"] == hit["id"]  # more like this moment: itself first


def test_the_video_is_served_whole_and_by_byte_ranges(video_client) -> None:  # noqa: ANN001
    client, _, media = video_client
    data = (media / "film.mp4").read_bytes()
    url = f"/api/items/{_video_hit(client)['id']}/file"
    whole = client.get(url)
    assert whole.status_code == 200 and whole.content == data and whole.headers["accept-ranges"] == "bytes"
    assert whole.headers["content-type"] == "video/mp4"
    for asked, first, last in (
        ("bytes=0-99", 0, 99),
        ("bytes=1000-", 1000, len(data) - 1),
        ("bytes=-500", len(data) - 500, len(data) - 1),
        (f"bytes=10-{len(data) * 2}", 10, len(data) - 1),
    ):
        part = client.get(url, headers={"Range": asked})
        assert part.status_code == 206, asked
        assert part.content == data[first : last + 1]
        assert part.headers["content-range"] == f"bytes {first}-{last}/{len(data)}"
    past = client.get(url, headers={"Range": f"bytes={len(data)}-"})
    assert past.status_code == 416 and past.headers["content-range"] == f"bytes */{len(data)}"
    for ignored in ("bytes=0-1,5-9", "items=0-10", "bytes=9-2", "nonsense"):  # not one byte range: the whole file
        assert client.get(url, headers={"Range": ignored}).content == data


def test_a_video_is_served_only_while_it_is_the_file_that_was_indexed(video_client, tmp_path: Path) -> None:  # noqa: ANN001
    client, _, media = video_client
    hit = _video_hit(client)
    film = media / "film.mp4"
    stat = film.stat()
    secret = tmp_path / "secret.mp4"
    secret.write_bytes(b"s" * stat.st_size)
    film.unlink()
    film.symlink_to(secret)
    os.utime(film, ns=(stat.st_atime_ns, stat.st_mtime_ns), follow_symlinks=False)
    for path in (f"/api/items/{hit['id']}/file", f"/api/items/{hit['id']}/thumbnail?size=999"):
        reply = client.get(path, headers={"Range": "bytes=0-10"})
        assert reply.status_code == 404, path
        assert b"s" * 11 not in reply.content


def test_byte_range_reads_single_ranges_and_ignores_the_rest() -> None:
    assert byte_range(None, 100) is None and byte_range("bytes=0-0", 100) == (0, 0)
    assert byte_range("bytes=-200", 100) == (0, 99) and byte_range("bytes=99-", 100) == (99, 99)
    assert byte_range(" bytes=5-9 ", 100) == (5, 9) and byte_range("bytes=-", 100) is None
