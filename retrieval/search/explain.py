"""Why a search found nothing, in words that name the filter that matched nothing.

"No results" after ``--under /nonexistent`` looks like a broken index; "no indexed image is
under /nonexistent" says what to change. Each part of the filter is counted alone (folders,
extensions, dates, texts it must hold), then the parts together, then paging and the score floor.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

from index.records import ImageFilter

__all__ = ["explain_no_hits"]

Count = Callable[[ImageFilter], int]  # how many indexed images pass a filter (ImageFilter(): all of them)


def explain_no_hits(count: Count, where: ImageFilter, min_score: float | None = None, offset: int = 0) -> str:
    """A sentence saying why a search with ``where``, ``min_score`` and ``offset`` found nothing."""
    total = count(ImageFilter())
    if total == 0:
        return "the library has no indexed images (run  xmr index PATH)."
    for folder in where.under:
        if count(ImageFilter(under=(folder,))) == 0:
            return f"no indexed image is under {folder}."
    if where.under and len(where.under) > 1 and count(ImageFilter(under=where.under)) == 0:
        return f"no indexed image is under any of {', '.join(where.under)}."
    if where.extensions and count(ImageFilter(extensions=where.extensions)) == 0:
        return f"no indexed image has the extension {' or '.join(where.extensions)}."
    if (where.after or where.before) and count(ImageFilter(after=where.after, before=where.before)) == 0:
        return f"no indexed image was taken {_period(where.after, where.before)} (capture time, else file time)."
    for words in where.contains:
        if count(ImageFilter(contains=(words,))) == 0:
            return f"no indexed image holds the words {words!r} (in its OCR text, name, captions or keywords)."
    matching = count(where) if where.active else total
    if matching == 0:
        return "no indexed image passes all the filters together, though each matches some; drop one of them."
    if offset >= matching:
        return f"{matching} indexed images match, and --offset {offset} skips them all."
    if min_score is not None:
        return f"no image scores {min_score:g} or more; lower --min-score."
    return "nothing matched."


def _period(after: datetime | None, before: datetime | None) -> str:
    if after and before:
        return f"from {_day(after)} to before {_day(before)}"
    return f"on or after {_day(after)}" if after else f"before {_day(before)}"


def _day(moment: datetime | None) -> str:
    assert moment is not None
    return moment.strftime("%Y-%m-%d") if moment.time() == datetime.min.time() else moment.isoformat(" ", "minutes")
