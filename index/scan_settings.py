"""What a library remembers about walking its folders: the ``--exclude`` patterns (``scan.json``).

Versioned like every file a library keeps; written atomically.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path

from index.atomic import atomic_write_bytes
from index.errors import CorruptFileError, LibraryVersionError

__all__ = ["SCAN_SETTINGS_VERSION", "load_excludes", "save_excludes"]

SCAN_SETTINGS_VERSION = 1  # 1: {"version": 1, "exclude": [pattern, ...]}


def load_excludes(path: Path) -> tuple[str, ...]:
    """The remembered exclude patterns at ``path`` (none when the file does not exist).

    Raises:
        CorruptFileError: the file is not readable settings.
        LibraryVersionError: written by a newer xmr.
    """
    try:
        raw = json.loads(Path(path).read_text())
    except FileNotFoundError:
        return ()
    except (OSError, ValueError) as exc:
        raise CorruptFileError(
            f"{path} is unreadable ({exc}); delete it to forget the library's --exclude patterns."
        ) from exc
    if not isinstance(raw, dict) or not isinstance(raw.get("exclude"), list):
        raise CorruptFileError(
            f"{path} is not xmr scan settings; delete it to forget the library's --exclude patterns."
        )
    if int(raw.get("version", 0)) > SCAN_SETTINGS_VERSION:
        raise LibraryVersionError(f"{path} was written by a newer xmr (version {raw['version']}); upgrade xmr.")
    return tuple(str(p) for p in raw["exclude"])


def save_excludes(path: Path, patterns: Iterable[str]) -> tuple[str, ...]:
    """Remember ``patterns`` (order kept, repeats dropped) at ``path``; return them."""
    kept = tuple(dict.fromkeys(patterns))
    body = {"version": SCAN_SETTINGS_VERSION, "exclude": list(kept)}
    atomic_write_bytes(Path(path), (json.dumps(body, indent=2) + "\n").encode())
    return kept
