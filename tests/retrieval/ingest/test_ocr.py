"""Reading text in photos (the real PP-OCRv4 models) and searching it: keyword, hybrid, --contains.

Photos are scikit-image's real ones with words rendered on them; the words each image
holds are the oracle. Images are small and few, so the real model stays quick.
"""

from __future__ import annotations

import os
import threading
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from index.errors import MissingDependencyError
from index.keywords import contains_phrase, tokens
from index.records import ImageFilter
from retrieval.ingest.ocr import OcrConfig, OcrEngine
from tests.helpers.text_images import render_words

pytest.importorskip("rapidocr_onnxruntime", reason="the OCR tests need the ocr extra (rapidocr-onnxruntime)")

CONFIG = OcrConfig(workers=1, det_side=480)  # small photos: no need to scale them up to 736
WORDS = {"coffee": "RECEIPT 42.50", "chelsea": "STATION EXIT", "rocket": "Q3 PLAN", "coins": "TOTAL 19.99"}


@pytest.fixture(scope="module")
def engine() -> OcrEngine:
    return OcrEngine(CONFIG)


@pytest.fixture
def signs(tmp_path: Path) -> tuple[Path, dict[str, tuple]]:
    """Photos with words (the oracle) and one without; file names carry no word."""
    folder = tmp_path / "signs"
    folder.mkdir()
    boxes = {}
    for number, (name, words) in enumerate(WORDS.items()):
        boxes[f"img{number}.jpg"] = (words, render_words(name, words, folder / f"img{number}.jpg"))
    render_words("camera", None, folder / "plain.jpg")
    return folder, boxes


def test_the_engine_reads_rendered_words_with_their_box(engine: OcrEngine, tmp_path: Path) -> None:
    box = render_words("coffee", "RECEIPT 42.50", tmp_path / "r.jpg")
    lines = engine.read(np.asarray(Image.open(tmp_path / "r.jpg").convert("RGB")))
    assert [tokens(line.text) for line in lines] == [["receipt"], ["42", "50"]]
    corners = np.asarray(lines[0].box).reshape(4, 2)
    assert lines[0].confidence > 0.8
    assert abs(corners[:, 0].min() - box[0]) < 0.05 and abs(corners[:, 0].max() - box[2]) < 0.05
    assert abs(corners[:, 1].min() - box[1]) < 0.05 and abs(corners[:, 1].max() - box[3]) < 0.05
    assert engine.read(np.zeros((8, 8, 3), np.uint8)) == []  # nothing to read is no line, not an error
    with pytest.raises(ValueError, match=r"\(H, W, 3\) uint8"):
        engine.read(np.zeros((8, 8), np.uint8))


def test_one_engine_is_safe_to_share_between_threads(engine: OcrEngine, tmp_path: Path) -> None:
    render_words("chelsea", "STATION EXIT", tmp_path / "s.jpg")
    pixels = np.asarray(Image.open(tmp_path / "s.jpg").convert("RGB"))
    expected = engine.read(pixels)
    results: list = []
    threads = [threading.Thread(target=lambda: results.append(engine.read(pixels))) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert results == [expected] * 3


def _oracle(boxes: dict[str, tuple], words: str) -> set[str]:
    return {name for name, (text, _) in boxes.items() if contains_phrase(tokens(text), tokens(words))}


def test_index_with_ocr_then_search_the_words(open_library, signs) -> None:  # noqa: ANN001
    folder, boxes = signs
    lib = open_library()
    report = lib.index([folder], ocr=True, ocr_config=CONFIG)
    assert (report.added, report.ocr_read, report.ocr_failed) == (5, 5, 0)
    for words in ("42.50", "station exit", "q3", "total 19.99", "exit station", "exit 42.50"):
        found = {Path(h.path).name for h in lib.search(words, k=10, mode="keyword")}  # any of the words
        assert found == set().union(*(_oracle(boxes, w) for w in words.split())), words
        quoted = {Path(h.path).name for h in lib.search(f'"{words}"', k=10, mode="keyword")}  # the words in a row
        assert quoted == _oracle(boxes, words), words
        contained = lib.search("a photo", k=10, where=ImageFilter(contains=(words,)), mode="semantic")
        assert {Path(h.path).name for h in contained} == _oracle(boxes, words), words
    top = lib.search("receipt 42.50", k=3, mode="hybrid")
    assert Path(top[0].path).name == "img0.jpg" and top[0].keyword_score and top[0].dual_score is not None
    match = top[0].match
    assert match is not None and match.source == "ocr" and tokens(match.text) == ["receipt"]
    corners = np.asarray(match.box).reshape(4, 2)
    expected = boxes["img0.jpg"][1]
    assert abs(corners[:, 0].min() - expected[0]) < 0.05 and abs(corners[:, 1].max() - expected[3]) < 0.05
    assert top[0].to_json()["match"]["source"] == "ocr"
    # -k counts images that pass --contains: asking for 1 gives 1, asking for 10 gives all there are
    assert len(lib.search("a photo", k=1, where=ImageFilter(contains=("exit",)))) == 1


def test_ocr_is_remembered_and_reads_only_what_it_has_not(open_library, signs) -> None:  # noqa: ANN001
    folder, _ = signs
    lib = open_library()
    lib.index([folder])  # no OCR asked for: none done, nothing remembered
    assert lib.catalog.ocr_read(r.content_hash for r in lib.catalog.files_under([str(folder)]).values()) == set()
    first = lib.index([folder], ocr=True, ocr_config=CONFIG)  # the indexed files are read, not re-embedded
    assert (first.encoded, first.ocr_read) == (0, 5)
    (folder / "img0.jpg").rename(folder / "moved.jpg")
    (folder / "copy.jpg").write_bytes((folder / "img1.jpg").read_bytes())
    render_words("coins", "NEW SIGN", folder / "new.jpg")
    again = lib.index([folder], ocr_config=CONFIG)  # remembered: on
    assert (again.moved, again.ocr_read) == (1, 1)  # only the new bytes are read
    assert {Path(h.path).name for h in lib.search("42.50", mode="keyword")} == {"moved.jpg"}
    assert {Path(h.path).name for h in lib.search("station", mode="keyword")} == {"img1.jpg", "copy.jpg"}
    render_words("chelsea", "OTHER WORDS", folder / "img1.jpg")  # edited: read again
    edited = lib.index([folder], ocr_config=CONFIG)
    assert (edited.updated, edited.ocr_read) == (1, 1)
    assert {Path(h.path).name for h in lib.search("station", mode="keyword")} == {"copy.jpg"}
    lib.index([folder], ocr=False)
    render_words("coins", "LATER", folder / "z.jpg")
    assert lib.index([folder]).ocr_read == 0  # --no-ocr is remembered too
    assert lib.search("later", mode="keyword") == []


def test_a_missing_extra_names_it(open_library, signs, monkeypatch: pytest.MonkeyPatch) -> None:  # noqa: ANN001
    import sys

    folder, _ = signs
    lib = open_library()
    monkeypatch.setitem(sys.modules, "rapidocr_onnxruntime", None)  # as if not installed
    monkeypatch.setattr("retrieval.ingest.ocr._local", threading.local())
    with pytest.raises(MissingDependencyError, match=r"xmr\[ocr\]"):
        lib.index([folder], ocr=True, ocr_config=CONFIG)
    assert lib.catalog.setting("ocr") is None  # not remembered: it never ran


def test_an_image_ocr_cannot_read_is_reported_and_the_run_goes_on(
    open_library, signs, monkeypatch: pytest.MonkeyPatch
) -> None:  # noqa: ANN001
    from tests.helpers.files import add_broken_files

    folder, boxes = signs
    broken = add_broken_files(folder, folder / "img0.jpg")
    plain = np.asarray(Image.open(folder / "plain.jpg").convert("RGB"))[:4, :4]
    real = OcrEngine.read

    def fails_on_plain(self, image, bgr=False):  # noqa: ANN001, ANN202
        if np.array_equal(image[:4, :4], plain):
            raise RuntimeError("the detector fell over")
        return real(self, image, bgr)

    monkeypatch.setattr(OcrEngine, "read", fails_on_plain)
    lib = open_library()
    report = lib.index([folder], ocr=True, ocr_config=CONFIG)
    reasons = dict(report.failures)
    assert (report.added, report.ocr_read) == (5, 4)  # the broken files fail both passes; plain.jpg only OCR
    assert reasons[str(folder / "plain.jpg")] == "reading text: RuntimeError: the detector fell over"
    assert [p for p, why in report.failures if p == str(broken["truncated"]) and why.startswith("reading text: ")]
    assert {Path(h.path).name for h in lib.search("42.50", mode="keyword")} == _oracle(boxes, "42.50")


def test_titles_and_keywords_are_searchable_and_sort_orders_by_date(open_library, tmp_path: Path) -> None:  # noqa: ANN001
    folder = tmp_path / "tagged"
    folder.mkdir()
    xmp = (
        b'<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF><rdf:Description><dc:title><rdf:Alt><rdf:li xml:lang="x-default">'
        b"Q3 plan</rdf:li></rdf:Alt></dc:title><dc:subject><rdf:Bag><rdf:li>whiteboard</rdf:li><rdf:li>office</rdf:li>"
        b"</rdf:Bag></dc:subject></rdf:Description></rdf:RDF></x:xmpmeta>"
    )
    for number in range(3):
        Image.new("RGB", (64, 48), (40 * number, 90, 200)).save(
            folder / f"p{number}.jpg", xmp=xmp if number == 1 else None
        )
        os.utime(folder / f"p{number}.jpg", ns=(10**18 + number * 10**15,) * 2)
    (folder / "p2.txt").write_text("a whiteboard in the office\n")
    lib = open_library()
    lib.index([folder])
    hits = lib.search("whiteboard", mode="keyword")
    assert {Path(h.path).name for h in hits} == {"p1.jpg", "p2.jpg"}
    sources = {Path(h.path).name: h.match.source for h in hits}  # type: ignore[union-attr]
    assert sources == {"p1.jpg": "keywords", "p2.jpg": "caption"}
    assert [Path(h.path).name for h in lib.search("q3 plan", mode="keyword")] == ["p1.jpg"]
    by_date = lib.search("a photo", k=3, mode="semantic", sort="date")
    assert [Path(h.path).name for h in by_date] == ["p0.jpg", "p1.jpg", "p2.jpg"]
    newest = lib.search("a photo", k=3, mode="semantic", sort="-date")
    assert [Path(h.path).name for h in newest] == ["p2.jpg", "p1.jpg", "p0.jpg"]
    assert sorted(h.rank for h in newest) == [1, 2, 3]  # each keeps its relevance rank


def test_keyword_search_on_postgresql_answers_as_on_sqlite(
    open_library, signs, postgres_url: str, tmp_path: Path
) -> None:  # noqa: ANN001
    folder, _ = signs
    answers = []
    for directory, url in ((tmp_path / "on-sqlite", ""), (tmp_path / "on-postgres", postgres_url)):
        lib = open_library(directory, catalog_url=url)
        lib.index([folder], ocr=True, ocr_config=CONFIG)
        run = []
        for words, mode in (
            ("42.50", "keyword"),
            ("exit station q3", "keyword"),
            ("receipt 42.50", "hybrid"),
            ("total", "auto"),
        ):
            run.append([(Path(h.path).name, round(h.score, 6), h.match) for h in lib.search(words, k=10, mode=mode)])
        contained = lib.search("a photo", k=10, where=ImageFilter(contains=("station exit",)), mode="semantic")
        run.append([(Path(h.path).name, round(h.score, 6), h.match) for h in contained])
        answers.append(run)
    assert answers[0] == answers[1]
    assert answers[0][0] and answers[0][-1]  # they found something
