"""Sidecar captions: found at index time, kept in step with their image."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from PIL import Image

from retrieval.ingest.sidecars import sidecar_captions


def _captions(lib) -> dict[str, set[str]]:  # noqa: ANN001
    lib.texts.refresh()
    hits = lib.search_texts(text="anything", k=100)
    out: dict[str, set[str]] = {}
    for hit in hits:
        out.setdefault(Path(hit.image_path).name, set()).add(hit.text)
    return out


def test_sidecar_files_and_embedded_descriptions_become_linked_texts(open_library, photos: Path) -> None:  # noqa: ANN001
    coffee = next(photos.rglob("coffee.*"))
    Path(str(coffee) + ".txt").write_text("black coffee\n\nwhite cup\n")
    coffee.with_suffix(".txt").write_text("white cup\nsaucer\n")  # duplicate line counted once
    exif = Image.Exif()
    exif[0x010E] = "an astronaut portrait"
    with Image.open(next(photos.rglob("astronaut.jpg"))) as image:
        image.save(photos / "described.jpg", exif=exif)
    lib = open_library()
    lib.index([photos])
    assert _captions(lib) == {
        coffee.name: {"black coffee", "white cup", "saucer"},
        "described.jpg": {"an astronaut portrait"},
    }
    (first,) = lib.search_texts(text="saucer", k=1)
    assert first.image_path == str(coffee) and first.score == pytest.approx(1.0, abs=1e-4)
    assert lib.texts.agrees_with_catalog()


def test_captions_follow_changes_moves_and_deletions(open_library, photos: Path) -> None:  # noqa: ANN001
    chelsea = next(photos.rglob("chelsea.*"))
    chelsea.with_suffix(".txt").write_text("a tabby cat\n")
    lib = open_library()
    lib.index([photos])
    assert _captions(lib) == {chelsea.name: {"a tabby cat"}}

    chelsea.with_suffix(".txt").write_text("a sleepy cat\n")
    with Image.open(chelsea) as image:  # the image changes too: its captions are read again
        image.transpose(Image.Transpose.FLIP_LEFT_RIGHT).save(chelsea)
    lib.index([photos])
    assert _captions(lib) == {chelsea.name: {"a sleepy cat"}}

    moved = photos / "nested" / f"cat{chelsea.suffix}"
    chelsea.rename(moved)
    chelsea.with_suffix(".txt").rename(moved.with_suffix(".txt"))  # its sidecar goes with it
    report = lib.index([photos])
    assert report.moved == 1 and _captions(lib) == {moved.name: {"a sleepy cat"}}

    moved.unlink()
    assert lib.index([photos]).removed == 1
    assert _captions(lib) == {} and lib.info().texts == 0
    assert lib.texts.agrees_with_catalog()


def test_sidecar_reader_skips_what_it_cannot_read(tmp_path: Path) -> None:
    image = tmp_path / "a.jpg"
    (tmp_path / "a.jpg.txt").write_bytes(b"\xff\xfe not utf-8 \x80")
    (tmp_path / "a.txt").write_text("x" * 70_000)  # too big for a caption file
    assert sidecar_captions(str(image), "  embedded  ") == ["embedded"]
    assert sidecar_captions(str(tmp_path / "none.jpg")) == []


def test_editing_only_a_sidecar_updates_captions_without_reembedding(open_library, photos: Path) -> None:  # noqa: ANN001
    import os

    coins = next(photos.rglob("coins.*"))
    exif = Image.Exif()
    exif[0x010E] = "old money"
    with Image.open(coins) as image:
        image.convert("RGB").save(photos / "described.jpg", exif=exif)
    lib = open_library()
    lib.index([photos])
    assert _captions(lib) == {"described.jpg": {"old money"}}

    sidecar = coins.with_suffix(".txt")
    sidecar.write_text("a pile of coins\n")  # a new sidecar beside an unchanged photo
    (photos / "described.txt").write_text("silver coins\n")
    report = lib.index([photos])
    assert (report.encoded, report.updated) == (0, 0)
    assert _captions(lib) == {coins.name: {"a pile of coins"}, "described.jpg": {"silver coins", "old money"}}

    sidecar.write_text("many coins\n")
    stamp = sidecar.stat().st_mtime_ns + 10**9
    os.utime(sidecar, ns=(stamp, stamp))
    sidecar_only = lib.index([photos])
    assert sidecar_only.encoded == 0 and _captions(lib)[coins.name] == {"many coins"}
    sidecar.unlink()
    lib.index([photos])
    assert coins.name not in _captions(lib)
    assert lib.texts.agrees_with_catalog()


def _stamp(path: Path, seconds: int) -> None:
    """Give ``path`` a modification time of its own (edits within one clock tick look unchanged)."""
    stamp = path.stat().st_mtime_ns + seconds * 10**9
    os.utime(path, ns=(stamp, stamp))


def test_a_moved_photo_takes_the_captions_of_its_new_place_in_the_same_run(open_library, photos: Path) -> None:  # noqa: ANN001
    chelsea, coffee = next(photos.rglob("chelsea.*")), next(photos.rglob("coffee.*"))
    Path(f"{chelsea}.txt").write_text("a red ball\nsunset\n")
    Path(f"{coffee}.txt").write_text("a cup\n")
    lib = open_library()
    lib.index([photos])
    assert _captions(lib) == {chelsea.name: {"a red ball", "sunset"}, coffee.name: {"a cup"}}

    cat = photos / f"cat{chelsea.suffix}"
    chelsea.rename(cat)  # its sidecar stays behind, beside no photo
    cup = photos / "nested" / f"cup{coffee.suffix}"
    coffee.rename(cup)
    cup.with_suffix(".txt").write_text("a mug\n")  # the new place has a caption of its own
    _stamp(cup.with_suffix(".txt"), 5)
    report = lib.index([photos])
    assert (report.moved, report.encoded) == (2, 0)
    assert _captions(lib) == {cup.name: {"a mug"}}
    assert lib.texts.agrees_with_catalog()
    assert lib.index([photos]).unchanged == 6 and _captions(lib) == {cup.name: {"a mug"}}


def test_a_photo_touched_while_its_sidecar_went_loses_its_captions_in_the_same_run(open_library, photos: Path) -> None:  # noqa: ANN001
    rocket = next(photos.rglob("rocket.*"))
    sidecar = Path(f"{rocket}.txt")
    sidecar.write_text("a launch\n")
    lib = open_library()
    lib.index([photos])
    assert _captions(lib) == {rocket.name: {"a launch"}}

    sidecar.unlink()
    _stamp(rocket, 5)  # same bytes, new timestamp: the vector is kept
    report = lib.index([photos])
    assert (report.encoded, report.updated, report.unchanged) == (0, 0, 6)
    assert _captions(lib) == {}


def test_removing_the_older_of_two_sidecars_drops_its_captions(open_library, photos: Path) -> None:  # noqa: ANN001
    camera = next(photos.rglob("camera.*"))
    older, newer = Path(f"{camera}.txt"), camera.with_suffix(".txt")
    older.write_text("a tripod\n")
    newer.write_text("a photographer\n")
    _stamp(newer, 5)
    lib = open_library()
    lib.index([photos])
    assert _captions(lib) == {camera.name: {"a tripod", "a photographer"}}

    older.unlink()  # the newest sidecar's mtime did not change
    assert lib.index([photos]).encoded == 0
    assert _captions(lib) == {camera.name: {"a photographer"}}
