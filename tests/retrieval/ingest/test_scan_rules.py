"""What a walk takes in: default NAS debris left out, --exclude and .xmrignore (against git itself),
symbolic links to folders walked once or reported, RAW files counted when they cannot be read."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from retrieval import ExcludePatternError
from retrieval.images.raw import RAW_EXTENSIONS
from retrieval.ingest.exclusions import ExclusionRules, normalize_pattern
from retrieval.ingest.scan import ScanConfig, scan

EXTENSIONS = frozenset({".jpg", ".png"})


def _touch(root: Path, *names: str) -> None:
    for name in names:
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"x")


def _found(root: Path, config: ScanConfig = ScanConfig(), extensions: frozenset[str] = EXTENSIONS) -> set[str]:
    return {Path(p).relative_to(root).as_posix() for p in scan([root], extensions, config).files}


def test_nas_and_os_debris_stay_out_by_default(tmp_path: Path) -> None:
    _touch(
        tmp_path,
        "photo.jpg",
        "2024/beach.jpg",
        "2024/@eaDir/beach.jpg/SYNOFILE_THUMB_XL.jpg",
        "2024/SYNOFILE_THUMB_M.jpg",
        "#recycle/old.jpg",
        "#snapshot/daily/photo.jpg",
        "@__thumb/x.jpg",
        "web/node_modules/pkg/logo.png",
        "zip/__MACOSX/a.jpg",
        "$RECYCLE.BIN/b.jpg",
        "Thumbs.db",
    )
    result = scan([tmp_path], EXTENSIONS)
    assert {Path(p).relative_to(tmp_path).as_posix() for p in result.files} == {"photo.jpg", "2024/beach.jpg"}
    assert result.excluded == 9  # each left-out folder or file once, not what is inside
    assert _found(tmp_path, ScanConfig(default_excludes=False)) >= {"#recycle/old.jpg", "web/node_modules/pkg/logo.png"}


def test_patterns_are_normalised_as_documented(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    assert normalize_pattern("./private") == str(tmp_path / "private")
    assert normalize_pattern("~/x") == os.path.expanduser("~/x")
    assert normalize_pattern("2019/drafts") == "**/2019/drafts"
    assert normalize_pattern("!2019/drafts/keep") == "!**/2019/drafts/keep"
    assert normalize_pattern("*.tmp") == "*.tmp" and normalize_pattern("Private/") == "Private/"
    assert normalize_pattern("/abs/folder") == "/abs/folder"
    with pytest.raises(ExcludePatternError, match="gitignore"):
        ExclusionRules(["!"])


def test_exclude_patterns_and_ignore_files(tmp_path: Path) -> None:
    _touch(
        tmp_path,
        "a.jpg",
        "b.png",
        "Private/c.jpg",
        "x/Private/d.jpg",
        "2019/drafts/e.jpg",
        "old/2019/drafts/f.jpg",
        "2019/final/g.jpg",
        "secret/h.jpg",
        "sub/skip-1.jpg",
        "sub/keep-me.jpg",
        "sub/deeper/skip-2.jpg",
        "sub/deeper/skip-3.jpg",
        "sub/@eaDir/i.jpg",
    )
    (tmp_path / "sub" / ".xmrignore").write_text("# comment\nskip-*.jpg\n!@eaDir\n")
    (tmp_path / "sub" / "deeper" / ".xmrignore").write_text("!skip-3.jpg\n")
    config = ScanConfig(exclude=("*.png", "Private/", "2019/drafts", str(tmp_path / "secret")))
    assert _found(tmp_path, config) == {
        "a.jpg",
        "2019/final/g.jpg",
        "sub/keep-me.jpg",
        "sub/deeper/skip-3.jpg",  # a deeper ignore file lets it back in
        "sub/@eaDir/i.jpg",  # a default let back in
    }


def test_ignore_files_decide_as_git_does(tmp_path: Path) -> None:
    """Seeded random trees and .gitignore-syntax files: the walk keeps what git leaves untracked-and-not-ignored."""
    if shutil.which("git") is None:
        pytest.skip("git is the oracle here")
    rng = np.random.default_rng(7)
    names = ["a", "b", "c", "dd", "e1"]
    patterns = ["a", "b/", "*.png", "!a", "c/*.jpg", "/dd", "!b", "**/e1/a.jpg", "d*", "!c/b.jpg", "e1/"]
    kept = []
    for trial in range(6):
        root = tmp_path / f"t{trial}"
        files = set()
        for _ in range(40):
            depth = rng.integers(1, 4)
            parts = [str(rng.choice(names)) for _ in range(depth)] + [
                str(rng.choice(names)) + str(rng.choice([".jpg", ".png"]))
            ]
            files.add("/".join(parts))
        files = {f for f in files if not any(f.startswith(g + "/") or g.startswith(f + "/") for g in files if g != f)}
        _touch(root, *sorted(files))
        folders = sorted({str(Path(f).parent) for f in files} | {"."})
        for folder in rng.choice(folders, size=min(4, len(folders)), replace=False):
            lines = rng.choice(patterns, size=rng.integers(1, 4), replace=False)
            (root / folder / ".xmrignore").write_text("\n".join(lines) + "\n")
        subprocess.run(["git", "init", "-q", str(root)], check=True)
        for ignore in root.rglob(".xmrignore"):
            shutil.copy(ignore, ignore.with_name(".gitignore"))
        listed = subprocess.run(
            ["git", "-C", str(root), "ls-files", "--others", "--exclude-standard"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.split()
        want = {p for p in listed if not Path(p).name.startswith(".")}
        assert _found(root, ScanConfig(default_excludes=False)) == want, trial
        kept.append((len(want), len(files)))
    assert any(w < f for w, f in kept) and all(w > 0 for w, _ in kept)  # the patterns did leave things out


def test_symlinked_folders_are_walked_once_and_never_silently_skipped(tmp_path: Path) -> None:
    outside = tmp_path / "nas-share"
    _touch(outside, "trip/a.jpg", "trip/b.jpg")
    root = tmp_path / "photos"
    _touch(root, "home.jpg", "real/c.jpg")
    (root / "share").symlink_to(outside)  # another volume linked in
    (root / "again").symlink_to(outside)  # the same folder a second time
    (root / "real" / "loop").symlink_to(root)  # a loop back to the top
    (root / "alias").symlink_to(root / "real")  # a real folder also reachable by a link
    result = scan([root], EXTENSIONS)
    found = {Path(p).relative_to(root).as_posix() for p in result.files}
    assert found == {"home.jpg", "real/c.jpg", "again/trip/a.jpg", "again/trip/b.jpg"}  # links in name order
    skipped = {Path(p).relative_to(root).as_posix(): why for p, why in result.links_skipped}
    assert set(skipped) == {"share", "real/loop", "alias"}
    assert str(root / "again") in skipped["share"] and str(root) in skipped["real/loop"]
    assert str(root / "real") in skipped["alias"]
    assert result.errors == ()

    quiet = scan([root], EXTENSIONS, ScanConfig(follow_symlinks=False))
    assert {Path(p).relative_to(root).as_posix() for p in quiet.files} == {"home.jpg", "real/c.jpg"}
    assert {Path(p).name for p, _ in quiet.links_skipped} == {"again", "share", "loop", "alias"}
    assert all("--no-follow" in why for _, why in quiet.links_skipped)


def test_raw_files_are_counted_when_they_cannot_be_read(tmp_path: Path) -> None:
    _touch(tmp_path, "a.jpg", "shoot/IMG_1.CR2", "shoot/IMG_2.nef", "shoot/notes.xmp")
    result = scan([tmp_path], EXTENSIONS)
    assert {Path(p).name for p in result.files} == {"a.jpg"}
    assert sorted(Path(p).name for p in result.raw_skipped) == ["IMG_1.CR2", "IMG_2.nef"]
    readable = scan([tmp_path], EXTENSIONS | RAW_EXTENSIONS)
    assert {Path(p).name for p in readable.files} == {"a.jpg", "IMG_1.CR2", "IMG_2.nef"} and readable.raw_skipped == ()
