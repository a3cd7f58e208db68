"""Read texts for the text corpus: one per line (.txt), pairs (.jsonl), or a CSV/TSV table.

A table holds its texts in a ``text`` (or ``caption``) column. Each text may name the
image it describes (the pairs' ``image``, a table's ``image`` column), so image-to-text
search can show which photo a caption belongs to. A table's image is an absolute path, a
path next to the table, or a path inside one of the library's folders (``trip/cat.jpg``
names the indexed ``/photos/trip/cat.jpg``), found by ``find_image``.
"""

from __future__ import annotations

import csv
from collections.abc import Callable, Iterable
from pathlib import Path, PurePosixPath

from retrieval.errors import PairsFormatError
from retrieval.ingest.pairs import load_pairs

__all__ = ["TEXT_COLUMNS", "IndexedPaths", "read_texts"]

TEXT_COLUMNS = ("text", "caption")  # a table's text column, first found wins
FindImage = Callable[[str], "str | None"]  # a relative image name -> an indexed image's path, or None


def read_texts(path: str | Path, find_image: FindImage | None = None) -> list[tuple[str, str | None]]:
    """(text, absolute image path or None) for each text in the file, in file order, once each.

    A table's relative image name that is not next to the table is looked up with
    ``find_image`` (see :class:`IndexedPaths`); when that finds nothing either, it stays
    resolved against the table's folder.

    Raises:
        PairsFormatError: unreadable file, unknown format, a table without a ``text`` or
            ``caption`` column, or a malformed pairs line (with the line named).
    """
    path = Path(path).expanduser().resolve()
    if path.is_dir():
        raise PairsFormatError(f"{path} is a folder; give the text file itself (.txt, .jsonl or .csv).")
    if not path.is_file():
        raise PairsFormatError(f"{path} does not exist.")
    suffix = path.suffix.lower()
    items: list[tuple[str, str | None]]
    if suffix == ".jsonl":
        pairs = load_pairs(path, check_files=False)
        items = [(caption, str(pairs.images[owner])) for caption, owner in zip(pairs.captions, pairs.caption_image)]
    elif suffix in {".csv", ".tsv", ".tab"}:
        items = _read_table(path, "," if suffix == ".csv" else "\t", find_image)
    elif suffix in {".txt", ".text", ""}:
        items = [(line.strip(), None) for line in _read_lines(path) if line.strip()]
    else:
        raise PairsFormatError(
            f"{path}: unknown text file type {suffix!r}; use .txt (one text per line), .jsonl (pairs), "
            ".csv or .tsv (a text or caption column)."
        )
    return list(dict.fromkeys(items))


def _read_lines(path: Path) -> list[str]:
    try:
        return path.read_text(encoding="utf-8").splitlines()
    except UnicodeDecodeError as exc:
        raise PairsFormatError(f"{path} is not UTF-8 text ({exc.reason} at byte {exc.start}).") from exc


def _read_table(path: Path, delimiter: str, find_image: FindImage | None) -> list[tuple[str, str | None]]:
    rows = csv.DictReader(_read_lines(path), delimiter=delimiter)
    fields = {name.strip().lower(): name for name in rows.fieldnames or [] if name}
    column = next((fields[name] for name in TEXT_COLUMNS if name in fields), None)
    if column is None:
        kind = "a CSV" if delimiter == "," else "a TSV"
        raise PairsFormatError(
            f"{path}: {kind} needs a 'text' or 'caption' column (found {', '.join(fields) or 'no header'})."
        )
    items = []
    for row in rows:
        text = (row.get(column) or "").strip()
        image = (row.get(fields["image"]) or "").strip() if "image" in fields else ""
        if text:
            items.append((text, _image_path(image, path.parent, find_image) if image else None))
    return items


def _image_path(image: str, folder: Path, find_image: FindImage | None) -> str:
    """An absolute path as it is; else next to the table; else an indexed image ending so."""
    given = Path(image).expanduser()
    if given.is_absolute():
        return str(given.resolve())
    beside = (folder / given).resolve()
    if beside.exists() or find_image is None:
        return str(beside)
    return find_image(image) or str(beside)


class IndexedPaths:
    """Finds the indexed image a relative name points to: the one path that ends with
    ``/NAME`` (``trip/cat.jpg`` -> ``/photos/trip/cat.jpg``); None when none or several do.

    ``paths`` (every indexed path) is read on the first look-up, once.
    """

    def __init__(self, paths: Callable[[], Iterable[str]]) -> None:
        self._paths = paths
        self._by_name: dict[str, list[str]] | None = None  # file name -> indexed paths

    def __call__(self, name: str) -> str | None:
        if self._by_name is None:
            self._by_name = {}
            for path in self._paths():
                self._by_name.setdefault(path.rsplit("/", 1)[-1], []).append(path)
        parts = PurePosixPath(name.replace("\\", "/")).parts
        tail = "/" + "/".join(part for part in parts if part not in {".", "..", "/"})
        matches = [p for p in self._by_name.get(tail.rsplit("/", 1)[-1], []) if p.endswith(tail)]
        return matches[0] if len(matches) == 1 else None
