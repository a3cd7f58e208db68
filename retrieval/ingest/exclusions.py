"""What stays out of a library: NAS and OS debris by default, ``--exclude`` patterns, ``.xmrignore`` files.

All three use gitignore syntax (through ``pathspec``) and are read in this order, the last
pattern that matches a path deciding (so ``!@eaDir`` in a ``.xmrignore`` lets a default back in):

1. the defaults (:data:`DEFAULT_EXCLUDES`): names that match at any depth;
2. the library's ``--exclude`` patterns: an absolute path (``~`` and ``./`` expanded when
   given) excludes that file or folder; a pattern without a slash (``*.tmp``, ``Private/``)
   matches a name at any depth; one with a slash inside (``2019/drafts``) matches that
   trail of folders at any depth;
3. every ``.xmrignore`` file in the folders above the path, outermost first, each read
   relative to its own folder (as git reads ``.gitignore``), wherever the indexed root is.

A folder that is excluded is not walked into, so nothing below it can be let back in
(as in git). ``pathspec`` is pure Python and small, so it is a base dependency: every
index run reads ``.xmrignore`` files. It is imported when rules are first read, not with this
module: a search process, which imports the library (and so this module), never walks a folder.
"""

from __future__ import annotations

import fnmatch
import os
import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from retrieval.errors import ExcludePatternError

if TYPE_CHECKING:
    import pathspec

__all__ = ["DEFAULT_EXCLUDES", "IGNORE_FILE", "ExclusionRules", "normalize_pattern"]

IGNORE_FILE = ".xmrignore"
# Thumbnails, recycle bins and snapshots that NAS systems (Synology, QNAP), desktops and
# other tools leave beside photos; name patterns, matched at any depth.
DEFAULT_EXCLUDES = (
    "@eaDir",  # Synology thumbnails and metadata
    "#recycle",  # Synology recycle bin
    "#snapshot",  # Synology snapshots
    "SYNOFILE_THUMB*",  # Synology thumbnails
    "@__thumb",  # QNAP thumbnails
    "@Recycle",  # QNAP recycle bin
    "@Recently-Snapshot",  # QNAP snapshots
    ".Trash-*",  # freedesktop trash on removable drives
    ".thumbnails",  # freedesktop thumbnail cache
    ".AppleDouble",  # Netatalk resource forks
    "._*",  # AppleDouble files macOS writes on foreign disks
    "__MACOSX",  # resource forks unpacked from zip files
    "$RECYCLE.BIN",  # Windows recycle bin
    "System Volume Information",  # Windows
    "Thumbs.db",  # Windows thumbnail cache
    "lost+found",  # fsck's finds
    ".git",
    "node_modules",
)
_DEFAULTS = re.compile("|".join(fnmatch.translate(p) for p in DEFAULT_EXCLUDES))


def normalize_pattern(pattern: str) -> str:
    """An ``--exclude`` pattern as it is remembered: paths made absolute, slashed trails unanchored.

    ``~/x`` and ``./x`` and ``../x`` become absolute (the folder meant when it was typed);
    ``2019/drafts`` becomes ``**/2019/drafts``; ``*.tmp``, ``Private/`` and ``/abs/path`` stay.
    """
    text = pattern.strip()
    if text.startswith(("~", "./", "../")) or text in (".", ".."):
        text = os.path.abspath(os.path.expanduser(text))
    body = text[1:] if text.startswith("!") else text
    if "/" in body.rstrip("/") and not body.startswith(("/", "**/")):
        text = ("!" if text.startswith("!") else "") + "**/" + body
    return text


@dataclass
class _Decision:
    excluded: bool | None = None  # None: no pattern has spoken yet


class ExclusionRules:
    """Decides whether a path stays out of the library; reads ``.xmrignore`` files once each."""

    def __init__(self, patterns: Iterable[str] = (), defaults: bool = True) -> None:
        """``patterns``: ``--exclude`` patterns (see :func:`normalize_pattern`); ``defaults``: also
        leave out :data:`DEFAULT_EXCLUDES`.

        Raises:
            ExcludePatternError: a pattern gitignore syntax cannot read.
        """
        self.patterns = tuple(normalize_pattern(p) for p in patterns if p.strip())
        self.defaults = defaults
        try:
            self._user = _gitignore(self.patterns) if self.patterns else None
        except ValueError as exc:
            raise ExcludePatternError(
                f"an --exclude pattern cannot be read as gitignore syntax ({exc}); e.g. '*.tmp', 'Private/', '/abs/folder'"
            ) from exc
        self._files: dict[str, pathspec.GitIgnoreSpec | None] = {}  # folder -> its .xmrignore, if any
        self._chains: dict[str, tuple[tuple[str, pathspec.GitIgnoreSpec], ...]] = {}  # folder -> files above it
        self.problems: list[tuple[str, str]] = []  # (.xmrignore path, why it could not be read)

    def excluded(self, path: str, is_dir: bool) -> bool:
        """Whether ``path`` (absolute) is left out by a pattern, looking only at its own name and
        the ``.xmrignore`` files above it (not whether a folder above it is left out)."""
        decision = _Decision()
        name = os.path.basename(path)
        if self.defaults and _DEFAULTS.match(name):
            decision.excluded = True
        suffix = "/" if is_dir else ""
        if self._user is not None:
            _apply(self._user, path.lstrip("/") + suffix, decision)
        for above, spec in self._chain(os.path.dirname(path)):
            _apply(spec, os.path.relpath(path, above) + suffix, decision)
        return bool(decision.excluded)

    def covers(self, path: str, root: str) -> bool:
        """Whether ``path`` or a folder between ``root`` (exclusive) and it is left out: what
        a walk of ``root`` would not have reached (for catalog rows of files still on disk)."""
        relative = os.path.relpath(path, root)
        if relative.startswith(".."):
            return False
        current = root
        parts = relative.split(os.sep)
        for depth, part in enumerate(parts):
            current = os.path.join(current, part)
            if self.excluded(current, is_dir=depth < len(parts) - 1):
                return True
        return False

    def note_listing(self, folder: str, names: Iterable[str]) -> None:
        """Tell the rules whether ``folder`` holds a ``.xmrignore`` (saves a stat per folder walked)."""
        if folder not in self._files and IGNORE_FILE not in names:
            self._files[folder] = None

    def _chain(self, folder: str) -> tuple[tuple[str, pathspec.GitIgnoreSpec], ...]:
        """The ``.xmrignore`` files in ``folder`` and above, outermost first."""
        chain = self._chains.get(folder)
        if chain is None:
            parent = os.path.dirname(folder)
            above = self._chain(parent) if parent != folder else ()
            spec = self._ignore_file(folder)
            chain = above + ((folder, spec),) if spec is not None else above
            self._chains[folder] = chain
        return chain

    def _ignore_file(self, folder: str) -> pathspec.GitIgnoreSpec | None:
        if folder in self._files:
            return self._files[folder]
        path = os.path.join(folder, IGNORE_FILE)
        spec = None
        try:
            with open(path, encoding="utf-8") as handle:
                spec = _gitignore(handle.read().splitlines())
        except FileNotFoundError:
            pass
        except (OSError, UnicodeDecodeError, ValueError) as exc:  # unreadable: said, never fatal
            self.problems.append((path, f"cannot read this ignore file, so its patterns are not applied: {exc}"))
        self._files[folder] = spec
        return spec


def _gitignore(lines: Iterable[str]) -> pathspec.GitIgnoreSpec:
    import pathspec  # see the module's docstring: kept off the search path

    return pathspec.GitIgnoreSpec.from_lines(lines)


def _apply(spec: pathspec.GitIgnoreSpec, relative: str, decision: _Decision) -> None:
    result = spec.check_file(relative)
    if result.include is not None:
        decision.excluded = result.include
