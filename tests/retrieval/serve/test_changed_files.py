"""Originals and thumbnails are served only while the file is still the one that was indexed."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

SECRET = b"root:x:0:0:TOP-SECRET-NOT-A-PHOTO:/root:/bin/bash\n"


def _hits(library) -> list:  # noqa: ANN001
    return list(library.search(text="x", k=20))


def _swap_for_symlink(photo: Path, tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret.txt").write_bytes(SECRET)
    photo.unlink()
    photo.symlink_to(outside / "secret.txt")


def _refused(response) -> None:  # noqa: ANN001
    assert response.status_code == 404, response.text
    assert b"TOP-SECRET" not in response.content
    assert "changed since it was indexed" in response.json()["detail"] and "xmr index" in response.json()["detail"]


def test_photo_swapped_for_a_symlink_is_not_served(fresh_client, fresh_library, tmp_path: Path) -> None:  # noqa: ANN001
    swapped, untouched = _hits(fresh_library)[:2]
    assert fresh_client.get(f"/api/items/{swapped.id}/thumbnail").status_code == 200  # cached before the swap
    _swap_for_symlink(Path(swapped.path), tmp_path)

    _refused(fresh_client.get(f"/api/items/{swapped.id}/file"))
    _refused(fresh_client.get(f"/api/items/{swapped.id}/thumbnail"))
    _refused(fresh_client.get(f"/api/items/{swapped.id}/thumbnail", params={"size": 1000}))  # not cached yet

    served = fresh_client.get(f"/api/items/{untouched.id}/file")
    assert served.status_code == 200 and served.content == Path(untouched.path).read_bytes()
    assert served.headers["content-length"] == str(len(served.content))
    assert (
        served.headers["content-disposition"].startswith("inline;")
        and Path(untouched.path).name in served.headers["content-disposition"]
    )
    assert served.headers["content-type"].startswith("image/")
    assert fresh_client.get(f"/api/items/{untouched.id}/thumbnail").status_code == 200


def test_photo_rewritten_in_place_is_not_served(fresh_client, fresh_library) -> None:  # noqa: ANN001
    hit = _hits(fresh_library)[0]
    photo = Path(hit.path)
    before = photo.stat()
    photo.write_bytes(SECRET)  # another file's bytes under the indexed name
    _refused(fresh_client.get(f"/api/items/{hit.id}/file"))
    _refused(fresh_client.get(f"/api/items/{hit.id}/thumbnail"))
    os.utime(photo, ns=(before.st_atime_ns, before.st_mtime_ns))  # same mtime, different size
    _refused(fresh_client.get(f"/api/items/{hit.id}/file"))


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="needs named pipes")
def test_fifo_in_place_of_a_photo_is_404_without_hanging(fresh_client, fresh_library) -> None:  # noqa: ANN001
    hit = _hits(fresh_library)[0]
    Path(hit.path).unlink()
    os.mkfifo(hit.path)
    for route in ("file", "thumbnail"):
        response = fresh_client.get(f"/api/items/{hit.id}/{route}")
        assert response.status_code == 404 and "xmr index" in response.json()["detail"]


def test_a_failed_thumbnail_write_leaves_no_temp_file(shared_library, tmp_path, monkeypatch) -> None:  # noqa: ANN001
    import os

    import pytest

    from retrieval.serve.items import Item, ThumbnailCache

    cache = ThumbnailCache(tmp_path / "thumbs", (64,))
    record = shared_library.catalog.images([shared_library.search(text="x", k=1)[0].id])
    (record,) = record.values()

    def disk_full(*args: object) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "replace", disk_full)
    with pytest.raises(OSError, match="No space"):
        cache.get(Item(record), 64)
    assert [p.name for p in (tmp_path / "thumbs").rglob("*") if p.is_file()] == []
