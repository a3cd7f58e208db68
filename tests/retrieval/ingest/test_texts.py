"""The text corpus: add, re-add, remove, and search texts by text or by image."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from retrieval.errors import PairsFormatError

CAPTIONS = [
    "a cup of coffee on a saucer",
    "an astronaut in a white suit",
    "a cat lying down",
    "a red rocket on the launch pad",
    "a pile of coins",
]


@pytest.fixture
def text_files(tmp_path: Path, photos: Path) -> dict[str, Path]:
    txt = tmp_path / "captions.txt"
    txt.write_text("\n".join(CAPTIONS) + "\n\n" + CAPTIONS[0] + "\n")  # blank line and a repeat
    coffee, astronaut = next(photos.rglob("coffee.*")), next(photos.rglob("astronaut.*"))
    csv = tmp_path / "tags.csv"
    csv.write_text(f'text,image\n"coffee, black",{coffee}\nspace,{astronaut}\nno image,\n')
    jsonl = tmp_path / "pairs.jsonl"
    jsonl.write_text(json.dumps({"image": str(coffee), "caption": "morning coffee", "negatives": ["tea"]}) + "\n")
    return {"txt": txt, "csv": csv, "jsonl": jsonl}


def test_exact_stored_text_comes_first_with_score_one(open_library, photos: Path, text_files) -> None:  # noqa: ANN001
    lib = open_library()
    lib.index([photos])
    report = lib.add_texts(text_files["txt"])
    assert (report.added, report.skipped) == (5, 0)
    for caption in CAPTIONS:
        (first, *_) = lib.search_texts(text=caption, k=3)
        assert first.text == caption and first.score == pytest.approx(1.0, abs=1e-4)
    assert lib.info().texts == 5


def test_readding_adds_nothing_and_remove_by_source(open_library, text_files) -> None:  # noqa: ANN001
    lib = open_library()
    lib.add_texts(text_files["txt"])
    again = lib.add_texts(text_files["txt"])
    assert (again.added, again.skipped) == (0, 5)
    lib.add_texts(text_files["csv"])
    assert lib.catalog.text_sources() == {str(text_files["csv"]): 3, str(text_files["txt"]): 5}
    assert lib.remove_texts(text_files["txt"]) == 5
    assert {h.source for h in lib.search_texts(text="coffee", k=10)} == {str(text_files["csv"])}
    assert lib.texts.agrees_with_catalog() and len(lib.texts.index) == 3


def test_image_to_text_ranks_by_cosine_and_keeps_image_links(open_library, photos: Path, text_files) -> None:  # noqa: ANN001
    lib = open_library()
    for path in text_files.values():
        lib.add_texts(path)
    query_image = next(photos.rglob("chelsea.*"))
    hits = lib.search_texts(image=query_image, k=20)
    query = lib.embed_image(query_image)
    vectors = {h.id: np.frombuffer(v, "<f4") for h, v in ((h, _vector(lib, h.id)) for h in hits)}
    assert [h.score for h in hits] == pytest.approx(
        sorted((float(vectors[h.id] @ query) for h in hits), reverse=True), abs=1e-5
    )
    linked = {h.text: h.image_path for h in hits}
    assert linked["morning coffee"] == str(next(photos.rglob("coffee.*"))) and linked["no image"] is None
    page = lib.search_texts(image=query_image, k=2, offset=2)
    assert [h.id for h in page] == [h.id for h in hits[2:4]]


def _vector(lib, text_id: int) -> bytes:  # noqa: ANN001
    from sqlalchemy import select
    from sqlalchemy.orm import Session

    from index.schema import TextRow

    with Session(lib.catalog.engine) as session:
        return session.scalar(select(TextRow.vector).where(TextRow.id == text_id))


def test_bad_text_files(open_library, tmp_path: Path) -> None:  # noqa: ANN001
    lib = open_library()
    (tmp_path / "no-text.csv").write_text("title,image\na,b\n")
    (tmp_path / "odd.xml").write_text("<a/>")
    (tmp_path / "bad.jsonl").write_text('{"caption": "x"}\n')
    (tmp_path / "folder").mkdir()
    for name, fragment in (
        ("folder", "is a folder"),
        ("no-text.csv", "'text' or 'caption' column"),
        ("odd.xml", "unknown text file type"),
        ("bad.jsonl", "bad.jsonl:1"),
        ("missing.txt", "does not exist"),
    ):
        with pytest.raises(PairsFormatError, match=fragment):
            lib.add_texts(tmp_path / name)
    assert lib.info().texts == 0


def test_texts_from_the_command_line(tmp_path: Path, tiny_model_dir: Path, photos: Path, text_files) -> None:  # noqa: ANN001
    from typer.testing import CliRunner

    import cli

    runner = CliRunner()
    lib = ["--library", str(tmp_path / "lib")]
    assert runner.invoke(cli.app, ["index", str(photos), "--model", str(tiny_model_dir), *lib]).exit_code == 0
    added = runner.invoke(cli.app, ["add-texts", str(text_files["txt"]), str(text_files["csv"]), "--json", *lib])
    assert [json.loads(line)["added"] for line in added.stdout.splitlines()] == [5, 3]
    found = runner.invoke(
        cli.app, ["search", "--image", str(next(photos.rglob("coffee.*"))), "--texts", "--json", "-k", "3", *lib]
    )
    assert (
        found.exit_code == 0
        and len(found.stdout.splitlines()) == 3
        and "text" in json.loads(found.stdout.splitlines()[0])
    )
    assert runner.invoke(cli.app, ["search", "x", "--texts", "--under", str(photos), *lib]).exit_code == 2
    assert runner.invoke(cli.app, ["remove-texts", str(text_files["txt"]), str(text_files["csv"]), *lib]).exit_code == 0
    assert runner.invoke(cli.app, ["search", "coffee", "--texts", *lib]).exit_code == 1


def test_tables_take_tsv_a_caption_column_and_images_inside_the_library(
    open_library, photos: Path, tmp_path: Path
) -> None:  # noqa: ANN001
    lib = open_library()
    lib.index([photos])
    elsewhere = tmp_path / "notes"
    elsewhere.mkdir()
    nested_coffee = next(photos.rglob("coffee.*"))
    relative = nested_coffee.relative_to(photos).as_posix()  # "nested/coffee.jpg" or "coffee.jpg"
    astronaut = next(photos.rglob("astronaut.*"))
    table = elsewhere / "captions.tsv"
    table.write_text(
        "image\tcaption\n"
        f"{relative}\tmorning coffee, black\n"  # found in the library, not next to the table
        f"{astronaut}\tan astronaut\n"  # absolute
        "nowhere/missing.jpg\ta lost photo\n"  # found nowhere: kept as written next to the table
    )
    stages: list[str] = []
    report = lib.add_texts(table, on_stage=stages.append)
    assert (report.added, report.missing_images) == (3, 1)
    assert stages[-1] == "embedding"  # the tiny model is loaded already: no "loading the model"
    hits = {h.text: h.image_path for h in lib.search_texts(text="coffee", k=3)}
    assert hits == {
        "morning coffee, black": str(nested_coffee),
        "an astronaut": str(astronaut),
        "a lost photo": str(elsewhere / "nowhere/missing.jpg"),
    }
    csv = tmp_path / "captions.csv"
    csv.write_text(f"Caption,Image\na cat,{astronaut}\n")
    assert lib.add_texts(csv).added == 1  # caption column, any case


def test_add_texts_reports_progress_per_batch(open_library, tmp_path: Path) -> None:  # noqa: ANN001
    lines = tmp_path / "many.txt"
    lines.write_text("\n".join(f"caption number {i}" for i in range(150)) + "\n")
    done = []
    report = open_library().add_texts(lines, batch_size=64, on_progress=lambda d, t: done.append((d, t)))
    assert report.added == 150 and done == [(64, 150), (128, 150), (150, 150)]
