"""Files an index run does not read are counted by kind, with the way to read them; JPEG 2000 is read."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from PIL import Image, features

from retrieval.ingest.skipped import (
    SkippedFiles,
    SkipRule,
    add_skip_rule,
    get_skip_rule,
    list_skip_rules,
    remove_skip_rule,
)


def test_kinds_not_read_are_counted_with_examples_and_the_fix(
    open_library, photos: Path, monkeypatch: pytest.MonkeyPatch
) -> None:  # noqa: ANN001
    from retrieval.images import decode

    # As without the heif extra (pillow-heif), whether or not this machine has it.
    without_heif = decode.image_extensions() - {".heic", ".heif"}
    monkeypatch.setattr(decode, "image_extensions", lambda: without_heif)
    for i in range(7):
        (photos / f"phone{i}.HEIC").write_bytes(b"\0\0\0\x18ftypheic")
    (photos / "nested" / "scan.jxl").write_bytes(b"\xff\x0a")
    (photos / "notes.docx").write_bytes(b"PK")  # not an image kind: no word about it
    report = open_library().index(photos)
    kinds = {kind.kind: kind for kind in report.not_read}
    assert report.added == 6 and report.failed == 0
    assert kinds["JPEG XL images"].count == 1 and kinds["JPEG XL images"].examples == (str(photos / "nested/scan.jxl"),)
    heic = kinds["HEIC/HEIF images"]
    assert heic.count == 7 and len(heic.examples) == 5 and "pip install 'xmr[heif]'" in heic.hint
    assert [k.kind for k in report.not_read] == ["HEIC/HEIF images", "JPEG XL images"]  # most files first
    assert report.to_json()["not_read"][-1] == {
        "kind": "JPEG XL images",
        "count": 1,
        "examples": [str(photos / "nested/scan.jxl")],
        "hint": kinds["JPEG XL images"].hint,
    }
    json.dumps(report.to_json())


def test_a_named_file_of_a_skipped_kind_is_reported_as_skipped(open_library, tmp_path: Path) -> None:  # noqa: ANN001
    lone = tmp_path / "one.jxl"
    lone.write_bytes(b"\xff\x0a")
    report = open_library().index(lone)
    assert [(k.kind, k.count) for k in report.not_read] == [("JPEG XL images", 1)] and report.failures == ()


def test_rules_are_data_that_other_rooms_extend() -> None:
    rule = SkipRule("test clips", frozenset({".testclip"}), "pip install 'xmr[test]'")
    add_skip_rule(rule)
    try:
        assert get_skip_rule(".TESTCLIP") == rule and rule in list_skip_rules()
        tally = SkippedFiles()
        assert tally.offer("/a/b.testclip", frozenset({".jpg"}))
        assert not tally.offer("/a/b.testclip", frozenset({".testclip"}))  # read by this run: not skipped
        assert not tally.offer("/a/b.txt", frozenset())
        assert [(k.kind, k.count, k.hint) for k in tally.report()] == [("test clips", 1, rule.hint)]
    finally:
        remove_skip_rule("test clips")
    assert get_skip_rule(".testclip") is None


@pytest.mark.skipif(not features.check("jpg_2000"), reason="this Pillow has no OpenJPEG")
def test_jpeg_2000_is_read_when_pillow_can(open_library, photos: Path) -> None:  # noqa: ANN001
    with Image.open(next(photos.rglob("chelsea.*"))) as image:
        image.convert("RGB").save(photos / "chelsea-copy.jp2")
    lib = open_library()
    report = lib.index(photos)
    assert report.added == 7 and report.not_read == () and report.failed == 0
    hit = lib.search(image=photos / "chelsea-copy.jp2", k=1)[0]
    assert hit.path.endswith("chelsea-copy.jp2") and hit.format == "JPEG2000"
