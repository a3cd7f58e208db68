"""Library.index with exclusions, links and RAW files: what leaves the library, what is said, what is kept."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from retrieval import ExcludePatternError
from retrieval.images import decode as decode_module


def _paths(lib, root: Path) -> set[str]:  # noqa: ANN001
    return {Path(p).relative_to(root).as_posix() for p in lib.catalog.files_under([str(root)])}


def test_files_that_become_excluded_leave_and_the_run_says_so(open_library, photos: Path) -> None:  # noqa: ANN001
    eadir = photos / "@eaDir" / "astronaut.jpg"
    eadir.mkdir(parents=True)
    shutil.copy(next(photos.rglob("rocket.*")), eadir / "SYNOFILE_THUMB_XL.jpg")
    lib = open_library()
    first = lib.index([photos])
    assert (
        first.added == 6
        and first.excluded == 1
        and "@eaDir/astronaut.jpg/SYNOFILE_THUMB_XL.jpg" not in _paths(lib, photos)
    )

    nested = sorted(_paths(lib, photos))
    second = lib.index([photos], exclude=["nested/"])
    gone = sorted(Path(p).relative_to(photos).as_posix() for p in second.excluded_removed)
    assert gone == [p for p in nested if p.startswith("nested/")] and len(gone) == 2
    assert second.removed == 2 and second.excluded == 2  # @eaDir and nested/
    assert lib.exclusions() == ("nested/",)
    assert lib.index([photos]).excluded_removed == ()  # remembered: nothing new to drop, nothing back

    assert lib.forget_exclusions(["nested/"]) == ()
    back = lib.index([photos])
    assert back.added == 2  # in again (embedded again: excluded rows leave with their vectors)
    assert _paths(lib, photos) == set(nested)


def test_ignore_file_written_later_drops_what_it_names(open_library, photos: Path) -> None:  # noqa: ANN001
    lib = open_library()
    lib.index([photos])
    (photos / "nested" / ".xmrignore").write_text("*.png\n")
    report = lib.index([photos])
    assert [Path(p).name for p in report.excluded_removed] == [
        p.name for p in sorted((photos / "nested").glob("*.png"))
    ]


def test_bad_pattern_is_refused_before_it_is_remembered(open_library, photos: Path) -> None:  # noqa: ANN001
    lib = open_library()
    with pytest.raises(ExcludePatternError):
        lib.index([photos], exclude=["!"])
    assert lib.exclusions() == () and not lib.layout.scan_settings.exists()


def test_links_not_followed_keep_their_images(open_library, photos: Path, tmp_path: Path) -> None:  # noqa: ANN001
    share = tmp_path / "share"
    share.mkdir()
    shutil.copy(next(photos.rglob("coffee.*")), share / "mug.png")
    (photos / "share").symlink_to(share)
    lib = open_library()
    assert lib.index([photos]).added == 7
    assert "share/mug.png" in _paths(lib, photos)
    quiet = lib.index([photos], follow_symlinks=False)
    assert quiet.removed == 0 and [Path(p).name for p, _ in quiet.links_skipped] == ["share"]
    assert "share/mug.png" in _paths(lib, photos)  # not walked: kept, as for a folder that could not be read


def test_raw_files_without_rawpy_are_counted_and_listed(
    open_library,
    photos: Path,
    monkeypatch: pytest.MonkeyPatch,  # noqa: ANN001
) -> None:
    (photos / "IMG_0001.CR2").write_bytes(b"II*\0raw")
    monkeypatch.setattr(decode_module, "raw_available", lambda: False)
    decode_module.image_extensions.cache_clear()
    try:
        report = decode_module.image_extensions()
        assert ".cr2" not in report
        result = open_library().index([photos])
    finally:
        decode_module.image_extensions.cache_clear()
    assert result.raw_skipped == (str(photos / "IMG_0001.CR2"),) and result.added == 6 and result.failed == 0
