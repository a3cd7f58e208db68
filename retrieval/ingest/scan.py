"""Walk folders for image files and plan an incremental index run against the catalog.

The plan sorts every file into: unchanged (skip), changed (re-embed unless its bytes are
the same), new (embed, or copy a vector with the same content hash), moved (a vanished
row's content found at a new path: keep its id and vector), and removed.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from pathlib import Path

from index.catalog import Catalog
from index.records import FAILED, PARTIAL, FileStat, ImageRecord, Moved, is_utf8
from index.schema import VIDEO
from retrieval.images.decode import hash_file
from retrieval.ingest.sidecars import sidecar_mtime, sidecar_paths
from retrieval.video.formats import is_video
from retrieval.video.identity import video_identity


@dataclass(frozen=True)
class ScanResult:
    """Image files found under the roots, and what could not be walked."""

    files: dict[str, FileStat]  # absolute path -> stat
    roots: tuple[str, ...]  # absolute roots as given (files or folders)
    errors: tuple[tuple[str, str], ...] = ()  # (path, why) for unreadable folders and missing roots
    text_files: dict[str, int] = field(default_factory=dict)  # .txt path -> mtime_ns (sidecar captions)


@dataclass
class Plan:
    """What an index run has to do."""

    todo: list[FileStat] = field(default_factory=list)  # files to read (new or changed)
    previous: dict[str, ImageRecord] = field(default_factory=dict)  # old rows of changed files
    moved: list[Moved] = field(default_factory=list)
    removed: list[int] = field(default_factory=list)
    removed_paths: list[str] = field(default_factory=list)  # their paths (to drop their captions)
    sidecar_mtimes: dict[str, int] = field(default_factory=dict)  # image path -> newest sidecar mtime
    recaption: list[ImageRecord] = field(default_factory=list)  # unchanged images whose sidecars changed
    unchanged: int = 0


def scan(roots: Iterable[str | Path], extensions: frozenset[str]) -> ScanResult:
    """Recursively find files whose extension is in ``extensions`` (case-insensitive).

    Hidden files and folders (names starting with ".") are skipped unless named as a root.
    """
    files: dict[str, FileStat] = {}
    texts: dict[str, int] = {}
    errors: list[tuple[str, str]] = []
    absolute: list[str] = []
    for root in roots:
        path = os.path.abspath(os.path.expanduser(str(root)))
        if not is_utf8(path):
            errors.append((printable_path(path), _NOT_UTF8))
            continue
        if not os.path.exists(path):
            # Not a root: an unplugged drive or a typo must not read as "everything under it
            # was deleted", so the catalog's rows under it are kept.
            errors.append((path, "no such file or folder (its images in the library are kept)"))
            continue
        absolute.append(path)
        if os.path.isfile(path):
            _add(files, errors, path, extensions, explicit=True)
            for candidate in sidecar_paths(path):
                if os.path.isfile(candidate):
                    texts[candidate] = os.stat(candidate).st_mtime_ns
        elif os.path.isdir(path):
            _walk(path, files, errors, extensions, texts)
        else:
            errors.append((path, "not a regular file or folder"))
    return ScanResult(files, tuple(absolute), tuple(errors), texts)


def _walk(
    top: str,
    files: dict[str, FileStat],
    errors: list[tuple[str, str]],
    extensions: frozenset[str],
    texts: dict[str, int],
) -> None:
    stack = [top]
    while stack:
        folder = stack.pop()
        try:
            with os.scandir(folder) as listing:
                entries = list(listing)
        except OSError as exc:
            errors.append((printable_path(folder), f"cannot list folder: {exc.strerror or exc}"))
            continue
        for entry in entries:
            try:
                _visit(entry, stack, files, errors, extensions, texts)
            except OSError as exc:  # one bad entry (a symlink loop, no permission) skips only itself
                errors.append((printable_path(entry.path), f"cannot read: {exc.strerror or exc}"))


def _visit(
    entry: os.DirEntry,
    stack: list[str],
    files: dict[str, FileStat],
    errors: list[tuple[str, str]],
    extensions: frozenset[str],
    texts: dict[str, int],
) -> None:
    if entry.name.startswith("."):
        return  # .thumbnails, .git, macOS "._IMG.jpg" sidecars: not photos
    if not is_utf8(entry.name):
        if entry.is_dir(follow_symlinks=False) or _has_extension(entry.name, extensions):
            errors.append((printable_path(entry.path), _NOT_UTF8))
    elif entry.is_dir(follow_symlinks=False):
        stack.append(entry.path)
    elif entry.name.lower().endswith(".txt") and entry.is_file():
        texts[entry.path] = entry.stat().st_mtime_ns  # a possible sidecar caption
    elif entry.is_file():
        _add(files, errors, entry.path, extensions)
    elif entry.is_symlink() and _has_extension(entry.name, extensions):
        errors.append((entry.path, "a symbolic link to nothing (its target is missing)"))


# The catalog stores paths as text; a name in another encoding (bytes Python keeps as lone
# surrogates) cannot be stored, so such files are reported and skipped, never fatal.
_NOT_UTF8 = "the name is not valid UTF-8, so it cannot be stored; rename it (e.g. convmv -f latin1 -t utf8 --notest) to index it"


def printable_path(path: str) -> str:
    """``path`` with undecodable bytes shown as ``\\xNN`` (for messages)."""
    return os.fsencode(path).decode("utf-8", "backslashreplace")


def _has_extension(name: str, extensions: frozenset[str]) -> bool:
    return os.path.splitext(name)[1].lower() in extensions


def _add(
    files: dict[str, FileStat],
    errors: list[tuple[str, str]],
    path: str,
    extensions: frozenset[str],
    explicit: bool = False,
) -> None:
    if not _has_extension(path, extensions):
        if explicit:
            errors.append((path, "not a supported image extension"))
        return
    try:
        stat = os.stat(path)
    except OSError as exc:
        errors.append((path, f"cannot stat: {exc.strerror or exc}"))
        return
    files[path] = FileStat(path, stat.st_size, stat.st_mtime_ns)


def make_plan(found: ScanResult, catalog: Catalog, retry_failed: bool = False) -> Plan:
    """Compare what is on disk with what the catalog knows under the same roots."""
    known = catalog.files_under(found.roots)
    plan = Plan()
    for path, stat in found.files.items():
        row = known.get(path)
        if row is None:
            plan.todo.append(stat)
        elif (
            (row.size, row.mtime_ns) != (stat.size, stat.mtime_ns)
            or (retry_failed and row.state == FAILED)
            or row.state == PARTIAL  # a video a killed run left half done: resume it
        ):
            plan.todo.append(stat)
            plan.previous[path] = row
        else:
            plan.unchanged += 1
            if (
                row.kind != VIDEO
                and row.state != FAILED
                and sidecar_mtime(path, found.text_files) != row.captions_mtime_ns
            ):
                plan.recaption.append(row)
    plan.sidecar_mtimes = {path: sidecar_mtime(path, found.text_files) for path in found.files}
    # A row is gone when its path holds no regular file now (deleted, or replaced by a folder
    # or a FIFO), unless the walk could not look there (then it is kept).
    unseen = tuple(path for path, _ in found.errors)
    gone = [
        row
        for path, row in known.items()
        if path not in found.files and not os.path.isfile(path) and not _under_any(path, unseen)
    ]
    plan.moved, moved_paths = _find_moves(gone, [s for s in plan.todo if s.path not in plan.previous])
    plan.todo = [s for s in plan.todo if s.path not in moved_paths]
    for move in plan.moved:  # a half-indexed video that moved resumes at its new path
        row = next(r for r in gone if r.id == move.id)
        if row.state == PARTIAL:
            plan.todo.append(move.stat)
            plan.previous[move.stat.path] = replace(
                row, path=move.stat.path, size=move.stat.size, mtime_ns=move.stat.mtime_ns
            )
    moved_ids = {m.id for m in plan.moved}
    plan.removed = [row.id for row in gone if row.id not in moved_ids]
    plan.removed_paths = [row.path for row in gone if row.id not in moved_ids]
    return plan


def _under_any(path: str, folders: tuple[str, ...]) -> bool:
    return any(path == f or path.startswith(f.rstrip("/") + "/") for f in folders)


def _find_moves(gone: list[ImageRecord], new: list[FileStat]) -> tuple[list[Moved], set[str]]:
    """Match vanished rows to new files of the same size and content hash."""
    by_size: dict[int, list[ImageRecord]] = {}
    for row in gone:
        if row.content_hash and row.state != FAILED:
            by_size.setdefault(row.size, []).append(row)
    moves: list[Moved] = []
    for stat in new:
        candidates = by_size.get(stat.size)
        if not candidates:
            continue  # only same-size files can be moves: no need to read the rest twice
        try:
            # A video is known by sampled blocks (a full read of a many-GB file is not needed).
            digest = video_identity(stat.path) if is_video(stat.path) else hash_file(stat.path)
        except OSError:
            continue  # reported when the file is read for embedding
        for row in candidates:
            if row.content_hash == digest:
                candidates.remove(row)
                moves.append(Moved(row.id, stat, row.path))
                break
    return moves, {m.stat.path for m in moves}
