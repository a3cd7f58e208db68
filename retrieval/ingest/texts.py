"""Read texts for the text corpus: one per line (.txt), pairs (.jsonl), or CSV with a text column.

Each text may name the image it describes (the pairs' ``image``, a CSV ``image`` column),
so image-to-text search can show which photo a caption belongs to.
"""

from __future__ import annotations

import csv
from pathlib import Path

from retrieval.errors import PairsFormatError
from retrieval.ingest.pairs import load_pairs


def read_texts(path: str | Path) -> list[tuple[str, str | None]]:
    """(text, absolute image path or None) for each text in the file, in file order, once each.

    Raises:
        PairsFormatError: unreadable file, unknown format, a CSV without a ``text`` column, or a
            malformed pairs line (with the line named).
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
    elif suffix == ".csv":
        items = _read_csv(path)
    elif suffix in {".txt", ".text", ""}:
        items = [(line.strip(), None) for line in _read_lines(path) if line.strip()]
    else:
        raise PairsFormatError(
            f"{path}: unknown text file type {suffix!r}; use .txt (one text per line), .jsonl (pairs) or .csv (a text column)."
        )
    return list(dict.fromkeys(items))


def _read_lines(path: Path) -> list[str]:
    try:
        return path.read_text(encoding="utf-8").splitlines()
    except UnicodeDecodeError as exc:
        raise PairsFormatError(f"{path} is not UTF-8 text ({exc.reason} at byte {exc.start}).") from exc


def _read_csv(path: Path) -> list[tuple[str, str | None]]:
    rows = csv.DictReader(_read_lines(path))
    fields = {name.strip().lower(): name for name in rows.fieldnames or []}
    if "text" not in fields:
        raise PairsFormatError(f"{path}: a CSV needs a 'text' column (found {', '.join(fields) or 'no header'}).")
    items = []
    for row in rows:
        text = (row.get(fields["text"]) or "").strip()
        image = (row.get(fields["image"]) or "").strip() if "image" in fields else ""
        if text:
            items.append((text, str((path.parent / image).resolve()) if image else None))
    return items
