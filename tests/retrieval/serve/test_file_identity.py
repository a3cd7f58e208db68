"""/file serves only the very file that was indexed: its device and inode, not just its size and mtime.

Issue 23, item 3: a hard link or a symbolic link to another file, made the same size and
given the photo's mtime, was served (an SSH private key, in the report).
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from sqlalchemy import text

SECRET = b"-----BEGIN OPENSSH PRIVATE KEY----- TOP-SECRET-NOT-A-PHOTO "


def _forge(photo: Path, outside: Path, how: str) -> None:
    """Put another file at ``photo``'s path with ``photo``'s size and mtime (a link to a secret)."""
    before = photo.stat()
    outside.mkdir(exist_ok=True)
    secret = outside / f"id_{photo.stem}"
    secret.write_bytes((SECRET * (before.st_size // len(SECRET) + 1))[: before.st_size])
    photo.unlink()
    if how == "hardlink":
        os.link(secret, photo)
    else:
        photo.symlink_to(secret)
    os.utime(secret, ns=(before.st_atime_ns, before.st_mtime_ns))  # the forged mtime
    assert (photo.stat().st_size, photo.stat().st_mtime_ns) == (before.st_size, before.st_mtime_ns)


def _refused(response, words: str = "changed since it was indexed") -> None:  # noqa: ANN001
    assert response.status_code == 404, response.text
    assert b"TOP-SECRET" not in response.content
    assert words in response.json()["detail"] and "xmr index" in response.json()["detail"]


@pytest.mark.parametrize("how", ["hardlink", "symlink"])
def test_a_link_with_forged_size_and_mtime_is_not_served(fresh_client, fresh_library, tmp_path: Path, how: str) -> None:  # noqa: ANN001
    hits = fresh_library.search(text="x", k=20)
    swapped, untouched = hits[0], hits[1]
    _forge(Path(swapped.path), tmp_path / "outside", how)

    _refused(fresh_client.get(f"/api/items/{swapped.id}/file"))
    _refused(fresh_client.get(f"/api/items/{swapped.id}/thumbnail", params={"size": 1000}))
    served = fresh_client.get(f"/api/items/{untouched.id}/file")
    assert served.status_code == 200 and served.content == Path(untouched.path).read_bytes()


def test_a_photo_kept_as_a_link_to_itself_is_still_served(fresh_client, fresh_library, tmp_path: Path) -> None:  # noqa: ANN001
    """Links are followed to the file they name, which must be the indexed inode."""
    hit = fresh_library.search(text="x", k=1)[0]
    photo = Path(hit.path)
    kept = tmp_path / "kept" / photo.name
    kept.parent.mkdir()
    os.rename(photo, kept)  # same inode, size and mtime
    photo.symlink_to(kept)
    served = fresh_client.get(f"/api/items/{hit.id}/file")
    assert served.status_code == 200 and served.content == kept.read_bytes()


def test_rows_without_an_inode_are_served_only_after_an_index_run_checks_them(
    fresh_client, fresh_library, tmp_path: Path
) -> None:  # noqa: ANN001
    """A library upgraded in place: its rows do not say which file they are (as migration 3 leaves them).

    /file refuses them until ``xmr index`` has hashed each file again; the files whose bytes
    match get their inode recorded without being embedded again, and one forged meanwhile
    (same size and mtime, other bytes) is read again and found not to be an image.
    """
    lib = fresh_library
    photos = lib.layout.root.parent / "photos"
    with lib.catalog.engine.begin() as connection:
        connection.execute(text("UPDATE images SET dev = NULL, ino = NULL"))
    hits = lib.search(text="x", k=20)
    good, forged = hits[0], hits[1]

    _refused(fresh_client.get(f"/api/items/{good.id}/file"), "indexed before xmr recorded which file it is")
    _refused(fresh_client.get(f"/api/items/{good.id}/thumbnail"), "indexed before xmr recorded which file it is")
    _forge(Path(forged.path), tmp_path / "outside", "hardlink")

    report = lib.index([photos])
    assert report.encoded == 0 and report.added == 0  # nothing embedded again
    assert report.failed == 1 and dict(report.failures)[forged.path].startswith("not an image file")
    assert report.unchanged == len(hits) - 1

    served = fresh_client.get(f"/api/items/{good.id}/file")
    assert served.status_code == 200 and served.content == Path(good.path).read_bytes()
    assert fresh_client.get(f"/api/items/{good.id}/thumbnail").status_code == 200
    refused = fresh_client.get(f"/api/items/{forged.id}/file")
    assert refused.status_code == 404 and b"TOP-SECRET" not in refused.content
    record = lib.catalog.image_by_path(good.path)
    status = os.stat(good.path)
    assert (record.dev, record.ino) == (status.st_dev, status.st_ino)
