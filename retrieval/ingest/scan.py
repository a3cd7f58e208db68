"""Walk folders for image files and plan an incremental index run against the catalog.

The plan sorts every file into: unchanged (skip), changed (re-embed unless its bytes are
the same), new (embed, or copy a vector with the same content hash), moved (a vanished
row's content found at a new path: keep its id and vector), and removed.
"""

from __future__ import annotations

import errno
import os
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING

from index.files import describe_mode
from index.records import FAILED, PARTIAL, FileStat, ImageRecord, Moved, is_utf8
from index.schema_names import VIDEO
from retrieval.images.decode import hash_file_checked
from retrieval.images.raw import RAW_EXTENSIONS
from retrieval.ingest.exclusions import ExclusionRules
from retrieval.ingest.sidecars import sidecar_mtime, sidecar_paths
from retrieval.ingest.skipped import SkippedFiles
from retrieval.results import SkippedKind
from retrieval.video.formats import is_video
from retrieval.video.identity import video_identity_checked

if TYPE_CHECKING:
    from index.catalog import Catalog


@dataclass(frozen=True)
class ScanConfig:
    """What a walk takes into the library besides the image extensions (remembered per library)."""

    exclude: tuple[str, ...] = ()  # gitignore patterns to leave out (see retrieval.ingest.exclusions)
    default_excludes: bool = True  # leave out NAS and OS debris (@eaDir, #recycle, Thumbs.db, ...)
    follow_symlinks: bool = True  # walk symbolic links to folders (once each); False: report them
    vanished_roots_deleted: bool = False  # a root that does not exist was deleted (a watch event), not unplugged


@dataclass(frozen=True)
class ScanResult:
    """Image files found under the roots, and what could not be walked."""

    files: dict[str, FileStat]  # absolute path -> stat
    roots: tuple[str, ...]  # absolute roots as given (files or folders)
    errors: tuple[tuple[str, str], ...] = ()  # (path, why) for unreadable folders and missing roots
    text_files: dict[str, int] = field(default_factory=dict)  # .txt path -> mtime_ns (sidecar captions)
    excluded: int = 0  # files and folders left out by exclusion rules (a folder counts once, not its files)
    links_skipped: tuple[tuple[str, str], ...] = ()  # (symbolic link to a folder, why it was not walked)
    raw_skipped: tuple[str, ...] = ()  # RAW files found but not readable here (rawpy missing)
    rules: ExclusionRules | None = None  # the rules the walk used (make_plan asks them about catalog rows)
    # (path, why) for entries with an image name that are no regular file (a FIFO, a device, a
    # link to one): reported, and a catalogued image at that path leaves the library.
    skipped: tuple[tuple[str, str], ...] = ()
    not_read: tuple[SkippedKind, ...] = ()  # files of kinds this run does not read, by kind
    missing: tuple[str, ...] = ()  # roots that do not exist (also among ``errors``)


@dataclass
class Plan:
    """What an index run has to do."""

    todo: list[FileStat] = field(default_factory=list)  # files to read (new or changed)
    previous: dict[str, ImageRecord] = field(default_factory=dict)  # old rows of changed files
    moved: list[Moved] = field(default_factory=list)
    removed: list[int] = field(default_factory=list)
    removed_paths: list[str] = field(default_factory=list)  # their paths (to drop their captions)
    sidecar_mtimes: dict[str, int] = field(default_factory=dict)  # image path -> newest sidecar mtime
    recaption: list[ImageRecord] = field(default_factory=list)  # same bytes (unchanged or moved), other sidecars
    # Unchanged images indexed before the catalog recorded which file they are: their bytes
    # were hashed again and matched, so this stat (device and inode of that read) is recorded.
    identified: list[FileStat] = field(default_factory=list)
    reembed: set[str] = field(default_factory=set)  # paths whose stored vector is damaged: embed again
    unchanged: int = 0
    rehash: int = 0  # of ``todo``, unchanged indexed files read only for the perceptual hash they lack
    excluded_paths: list[str] = field(default_factory=list)  # of ``removed_paths``: still on disk, excluded now


@dataclass
class _Walk:
    """What a walk has found so far, and what it walks by."""

    extensions: frozenset[str]
    rules: ExclusionRules
    config: ScanConfig
    files: dict[str, FileStat] = field(default_factory=dict)
    texts: dict[str, int] = field(default_factory=dict)
    errors: list[tuple[str, str]] = field(default_factory=list)
    excluded: int = 0
    links: list[str] = field(default_factory=list)  # symbolic links to folders, walked after every real folder
    links_skipped: list[tuple[str, str]] = field(default_factory=list)
    raw_skipped: list[str] = field(default_factory=list)
    skipped: list[tuple[str, str]] = field(default_factory=list)  # not regular files with an image name
    walked: dict[tuple[int, int], str] = field(default_factory=dict)  # (device, inode) of each folder walked -> path
    not_read: SkippedFiles = field(default_factory=SkippedFiles)  # files of kinds this run does not read
    missing: list[str] = field(default_factory=list)  # roots that do not exist


def scan(roots: Iterable[str | Path], extensions: frozenset[str], config: ScanConfig = ScanConfig()) -> ScanResult:
    """Recursively find files whose extension is in ``extensions`` (case-insensitive).

    Hidden files and folders (names starting with ".") are skipped unless named as a root;
    so is whatever ``config``'s exclusion rules leave out (a root named is always walked).
    Symbolic links to folders are walked after all real folders, each real folder once
    (a link to a folder already walked, a loop included, is reported and not walked again),
    or, without ``config.follow_symlinks``, reported and not walked.

    Raises:
        ExcludePatternError: an exclude pattern that gitignore syntax cannot read.
    """
    walk = _Walk(extensions, ExclusionRules(config.exclude, config.default_excludes), config)
    absolute: list[str] = []
    for root in roots:
        path = os.path.abspath(os.path.expanduser(str(root)))
        if not is_utf8(path):
            walk.errors.append((printable_path(path), _NOT_UTF8))
            continue
        if not os.path.exists(path):
            if config.vanished_roots_deleted:  # the watcher saw it go: its rows leave (or move)
                absolute.append(path)
                continue
            # Not a root: an unplugged drive or a typo must not read as "everything under it
            # was deleted", so the catalog's rows under it are kept.
            walk.errors.append((path, "no such file or folder (its images in the library are kept)"))
            walk.missing.append(path)
            continue
        absolute.append(path)
        if os.path.isfile(path):
            _add(walk, path, explicit=True)
            for candidate in sidecar_paths(path):
                if os.path.isfile(candidate):
                    walk.texts[candidate] = os.stat(candidate).st_mtime_ns
        elif os.path.isdir(path):
            _walk(path, walk)
        else:
            walk.errors.append((path, f"{not_a_file(path)}: not a regular file or folder"))
    _walk_links(walk)
    walk.errors.extend(walk.rules.problems)
    return ScanResult(
        walk.files,
        tuple(absolute),
        tuple(walk.errors),
        walk.texts,
        walk.excluded,
        tuple(walk.links_skipped),
        tuple(walk.raw_skipped),
        walk.rules,
        tuple(walk.skipped),
        walk.not_read.report(),
        tuple(walk.missing),
    )


def _walk(top: str, walk: _Walk) -> None:
    if not _first_visit(top, walk):
        return
    stack = [top]
    while stack:
        folder = stack.pop()
        try:
            with os.scandir(folder) as listing:
                entries = sorted(listing, key=lambda e: e.name)  # a stable order: links resolve the same way each run
        except OSError as exc:
            walk.errors.append((printable_path(folder), f"cannot list folder: {exc.strerror or exc}"))
            continue
        walk.rules.note_listing(folder, [e.name for e in entries])
        for entry in entries:
            try:
                _visit(entry, stack, walk)
            except OSError as exc:  # one bad entry (a symlink loop, no permission) skips only itself
                walk.errors.append((printable_path(entry.path), f"cannot read: {exc.strerror or exc}"))


def _visit(entry: os.DirEntry, stack: list[str], walk: _Walk) -> None:
    if entry.name.startswith("."):
        return  # .thumbnails, .git, macOS "._IMG.jpg" sidecars: not photos
    if not is_utf8(entry.name):
        if entry.is_dir(follow_symlinks=False) or _has_extension(entry.name, walk.extensions):
            walk.errors.append((printable_path(entry.path), _NOT_UTF8))
    elif _excluded(entry, walk):
        walk.excluded += 1
    elif entry.is_dir(follow_symlinks=False):
        if _first_visit(entry.path, walk):
            stack.append(entry.path)
    elif entry.is_symlink() and entry.is_dir():
        walk.links.append(entry.path)  # walked once every real folder has been
    elif entry.name.lower().endswith(".txt") and entry.is_file():
        walk.texts[entry.path] = entry.stat().st_mtime_ns  # a possible sidecar caption
    elif entry.is_file():
        _add(walk, entry.path)
    elif _has_extension(entry.name, walk.extensions):
        why = not_a_file(entry.path)
        # A dangling link may be a drive not mounted now: its image is kept, as for an unreadable folder.
        if why.startswith(_DANGLING):
            walk.errors.append((entry.path, why))
        else:
            walk.skipped.append((entry.path, f"{why}, not a regular file: skipped"))


_DANGLING = "a symbolic link to nothing"


def not_a_file(path: str) -> str:
    """What ``path`` is, in words, when it is no regular file: "a FIFO (named pipe)", "a symbolic
    link to a character device (/dev/zero)", "a symbolic link to nothing (its target is missing)"."""
    link = os.path.islink(path)
    try:
        kind = describe_mode(os.stat(path).st_mode)
    except OSError as exc:
        if link and exc.errno == errno.ENOENT:
            return f"{_DANGLING} (its target is missing)"
        return f"{'a symbolic link that ' if link else ''}cannot be read ({exc.strerror or exc})"
    return f"a symbolic link to {kind} ({os.path.realpath(path)})" if link else kind


def _excluded(entry: os.DirEntry, walk: _Walk) -> bool:
    """Whether the exclusion rules leave ``entry`` out (defaults, --exclude, .xmrignore files)."""
    return walk.rules.excluded(entry.path, entry.is_dir())


def _first_visit(folder: str, walk: _Walk) -> bool:
    """Note ``folder`` as walked; False when the same folder (device and inode) was walked already."""
    info = os.stat(folder)
    key = (info.st_dev, info.st_ino)
    if key in walk.walked:
        return False
    walk.walked[key] = folder
    return True


def _walk_links(walk: _Walk) -> None:
    """Walk the symbolic links to folders the walk met (and those met inside them), each target once."""
    done = 0
    while done < len(walk.links):
        link = walk.links[done]
        done += 1
        if not walk.config.follow_symlinks:
            walk.links_skipped.append((link, _NOT_FOLLOWED))
            continue
        try:
            info = os.stat(link)
        except OSError as exc:
            walk.errors.append((printable_path(link), f"cannot read: {exc.strerror or exc}"))
            continue
        first = walk.walked.get((info.st_dev, info.st_ino))
        if first is not None:
            walk.links_skipped.append(
                (link, f"a symbolic link to a folder already walked as {first} (not walked twice)")
            )
            continue
        _walk(link, walk)


_NOT_FOLLOWED = "a symbolic link to a folder, not followed (--no-follow); its images in the library are kept"


# The catalog stores paths as text; a name in another encoding (bytes Python keeps as lone
# surrogates) cannot be stored, so such files are reported and skipped, never fatal.
_NOT_UTF8 = "the name is not valid UTF-8, so it cannot be stored; rename it (e.g. convmv -f latin1 -t utf8 --notest) to index it"


def printable_path(path: str) -> str:
    """``path`` with undecodable bytes shown as ``\\xNN`` (for messages)."""
    return os.fsencode(path).decode("utf-8", "backslashreplace")


def _has_extension(name: str, extensions: frozenset[str]) -> bool:
    return os.path.splitext(name)[1].lower() in extensions


def _add(walk: _Walk, path: str, explicit: bool = False) -> None:
    if not _has_extension(path, walk.extensions):
        if _has_extension(path, RAW_EXTENSIONS):
            walk.raw_skipped.append(path)  # counted and listed: never skipped without a word
        elif walk.not_read.offer(path, walk.extensions):
            pass  # counted by kind, with the way to read it
        elif explicit:
            walk.errors.append((path, "not a supported image extension"))
        return
    try:
        stat = os.stat(path)
    except OSError as exc:
        walk.errors.append((path, f"cannot stat: {exc.strerror or exc}"))
        return
    walk.files[path] = FileStat(path, stat.st_size, stat.st_mtime_ns)


def make_plan(found: ScanResult, catalog: Catalog, retry_failed: bool = False, dim: int | None = None) -> Plan:
    """Compare what is on disk with what the catalog knows under the same roots.

    Unchanged images whose row does not yet say which file they are (indexed before the
    catalog recorded device and inode) are hashed again: a match records the file's identity
    (:attr:`Plan.identified`), a mismatch (same size and mtime, other bytes: forged, or damaged)
    reads the file again. With ``dim``, images whose stored vector is not ``dim`` floats (a
    damaged row) are read and embedded again.
    """
    known = catalog.files_under(found.roots)
    damaged = {r.path for r in catalog.bad_vectors(dim, found.roots)} if dim else set()
    plan = Plan(reembed=damaged)
    unchanged: list[tuple[FileStat, ImageRecord]] = []
    for path, stat in found.files.items():
        row = known.get(path)
        if row is None:
            plan.todo.append(stat)
        elif (
            (row.size, row.mtime_ns) != (stat.size, stat.mtime_ns)
            or (retry_failed and row.state == FAILED)
            or row.state == PARTIAL  # a video a killed run left half done: resume it
            or path in damaged
        ):
            plan.todo.append(stat)
            plan.previous[path] = row
        elif _lacks_phash(row):  # the read records its device and inode too
            plan.todo.append(stat)  # read again, its bytes unchanged: only the hash is written
            plan.previous[path] = row
            plan.rehash += 1
        else:
            unchanged.append((stat, row))
    plan.identified, reread = _identify([(s, r) for s, r in unchanged if r.state != FAILED and r.dev is None])
    for stat, row in unchanged:
        if stat.path in reread:
            plan.todo.append(stat)
            plan.previous[stat.path] = row
            continue
        plan.unchanged += 1
        if (
            row.kind != VIDEO
            and row.state != FAILED
            and sidecar_mtime(stat.path, found.text_files) != row.captions_mtime_ns
        ):
            plan.recaption.append(row)
    plan.sidecar_mtimes = {path: sidecar_mtime(path, found.text_files) for path in found.files}
    gone, excluded = _gone(found, known)
    plan.moved, moved_paths = _find_moves(gone, [s for s in plan.todo if s.path not in plan.previous])
    plan.todo = [s for s in plan.todo if s.path not in moved_paths]
    for move in plan.moved:  # a half-indexed video that moved resumes at its new path
        row = next(r for r in gone if r.id == move.id)
        if row.state == PARTIAL:
            plan.todo.append(move.stat)
            plan.previous[move.stat.path] = replace(
                row,
                path=move.stat.path,
                size=move.stat.size,
                mtime_ns=move.stat.mtime_ns,
                dev=move.stat.dev,
                ino=move.stat.ino,
            )
    moved_ids = {m.id for m in plan.moved}
    plan.removed = [row.id for row in gone if row.id not in moved_ids]
    plan.removed_paths = [row.path for row in gone if row.id not in moved_ids]
    # A moved row carries its captions along, but its sidecars may not have moved with it (or
    # others lie at the new place): those of its new path are read again, as for an unchanged file.
    rows = {row.id: row for row in gone}
    for move in plan.moved:
        if sidecar_mtime(move.stat.path, found.text_files) != rows[move.id].captions_mtime_ns:
            plan.recaption.append(replace(rows[move.id], path=move.stat.path))
    plan.excluded_paths = [path for path in plan.removed_paths if path in excluded]
    return plan


_HASH_THREADS = 4  # hashing releases the GIL: a few threads keep a disk busy


def _identify(pairs: list[tuple[FileStat, ImageRecord]]) -> tuple[list[FileStat], set[str]]:
    """Hash each unchanged file whose row lacks its device and inode.

    Returns the stats (with identity) of those whose bytes are still the indexed ones, and
    the paths of those that must be read again: other bytes under the same size and mtime
    (an unknown inode is never trusted on size and mtime alone). A file that cannot be read
    now is left as it is (kept, still without identity, so still not served).
    """
    if not pairs:
        return [], set()

    def check(pair: tuple[FileStat, ImageRecord]) -> FileStat | bool:
        """The identified stat; False: other bytes (read again); True: unreadable now (left as it is)."""
        stat, row = pair
        try:
            digest, status = _identity_checked(stat.path)  # a video: its sampled blocks, not a full read
        except OSError:
            return True
        same = digest == row.content_hash and (status.st_size, status.st_mtime_ns) == (row.size, row.mtime_ns)
        return FileStat.of(stat.path, status) if same else False

    with ThreadPoolExecutor(_HASH_THREADS, thread_name_prefix="xmr-identify") as pool:
        results = list(pool.map(check, pairs))
    identified = [found for found in results if isinstance(found, FileStat)]
    return identified, {stat.path for (stat, _), found in zip(pairs, results) if found is False}


def _identity_checked(path: str) -> tuple[str, os.stat_result]:
    """What the catalog's ``content_hash`` holds for the file at ``path`` (a video's sampled-block
    identity, a photo's full hash), and ``os.fstat`` of the descriptor read."""
    return video_identity_checked(path) if is_video(path) else hash_file_checked(path)


def _gone(found: ScanResult, known: dict[str, ImageRecord]) -> tuple[list[ImageRecord], set[str]]:
    """Catalog rows to drop, and which of them are files still on disk that are excluded now.

    A row is gone when its path holds no regular file now (deleted, or replaced by a folder
    or a FIFO), when exclusion rules cover it, or when it lies under a link to a folder that
    is walked under another path; it is kept where the walk could not look (an unreadable
    folder, a link not followed).
    """
    unseen = tuple(path for path, _ in found.errors) + tuple(
        link for link, why in found.links_skipped if why == _NOT_FOLLOWED
    )
    twice = tuple(link for link, why in found.links_skipped if why != _NOT_FOLLOWED)
    gone, excluded = [], set()
    for path, row in known.items():
        if path in found.files or _under_any(path, unseen):
            continue
        if not os.path.isfile(path) or _under_any(path, twice):
            gone.append(row)
        elif _now_excluded(path, found):
            gone.append(row)
            excluded.add(path)
    return gone, excluded


def _now_excluded(path: str, found: ScanResult) -> bool:
    """Whether the walk's exclusion rules cover ``path``, between its root and it."""
    root = max((r for r in found.roots if _under_any(path, (r,))), key=len, default=None)
    return found.rules is not None and root is not None and root != path and found.rules.covers(path, root)


def _lacks_phash(row: ImageRecord) -> bool:
    """An indexed photo from before catalog schema 2, which stored no perceptual hash (a video
    has none: duplicates compare photos only)."""
    return row.kind != VIDEO and row.state != FAILED and row.phash is None


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
            digest, status = _identity_checked(stat.path)
        except OSError:
            continue  # reported when the file is read for embedding
        for row in candidates:
            if row.content_hash == digest:
                candidates.remove(row)
                moves.append(Moved(row.id, FileStat.of(stat.path, status), row.path))  # the file hashed: its identity
                break
    return moves, {m.stat.path for m in moves}
