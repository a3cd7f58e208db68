"""Turn command-line query options into query terms and an image filter.

Syntax (documented in README.md): positive texts and ``--image`` paths, ``--not TEXT`` and
``--not-image PATH`` for terms to steer away from, ``--weight W:TERM`` to weigh a term
(``TERM`` is one of the texts or image paths given; the sign comes from where it was given).
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Sequence
from datetime import datetime

from index.keywords import tokens
from index.records import ALL, PHOTOS, VIDEOS, ImageFilter, is_utf8
from retrieval.errors import QueryError
from retrieval.results import Term

MAX_WEIGHT = 1e6  # larger weights gain nothing (the sum is renormalised) and can overflow it
FIRST_YEAR, LAST_YEAR = 1900, 9999  # dates --after/--before take: every one converts to a timestamp


def parse_weights(specs: Sequence[str]) -> dict[str, float]:
    """``["2:beach", "0.5:ref.jpg"]`` -> ``{"beach": 2.0, "ref.jpg": 0.5}``.

    Raises:
        QueryError: not WEIGHT:TERM, or a weight that is not a number above 0 and at most
            :data:`MAX_WEIGHT` (``nan``, ``inf`` and ``1e309`` are refused).
    """
    weights: dict[str, float] = {}
    for spec in specs:
        number, sep, term = spec.partition(":")
        try:
            weight = float(number)
        except ValueError:
            weight = float("nan")
        if not sep or not term or not 0 < weight <= MAX_WEIGHT:  # False for nan
            raise QueryError(
                f"--weight takes WEIGHT:TERM with a positive number at most {MAX_WEIGHT:,.0f}, e.g. --weight 2:beach (got {spec!r})."
            )
        weights[term] = weight
    return weights


def check_text(text: str, option: str = "the query text") -> str:
    """``text`` itself when it can be stored and embedded (encodes as UTF-8).

    A command-line argument with bytes that are not UTF-8 arrives with lone surrogates.

    Raises:
        QueryError: the text has lone surrogates.
    """
    if not is_utf8(text):
        raise QueryError(f"{option} is not valid UTF-8 (got {text!r}); retype it or fix the terminal's encoding.")
    return text


def check_min_score(value: float | None, option: str = "--min-score") -> float | None:
    """``value`` itself unless it is NaN, which no score passes.

    Raises:
        QueryError: ``value`` is NaN.
    """
    if value is not None and math.isnan(value):
        raise QueryError(f"{option} takes a number such as 0.2, not nan.")
    return value


def build_terms(
    texts: Sequence[str] = (),
    images: Sequence[str] = (),
    not_texts: Sequence[str] = (),
    not_images: Sequence[str] = (),
    weights: Sequence[str] = (),
) -> list[Term]:
    """Query terms from the options; every ``--weight`` must name a given term."""
    for text in texts:
        check_text(text)
    for text in not_texts:
        check_text(text, "the --not text")
    table = parse_weights(weights)
    named = {*texts, *not_texts, *map(str, images), *map(str, not_images)}
    unknown = sorted(set(table) - named)
    if unknown:
        raise QueryError(
            f"--weight names {', '.join(map(repr, unknown))}, which is not among the query's texts or images."
        )
    terms = [Term(text=t, weight=table.get(t, 1.0)) for t in texts]
    terms += [Term(image=str(p), weight=table.get(str(p), 1.0)) for p in images]
    terms += [Term(text=t, weight=-table.get(t, 1.0)) for t in not_texts]
    terms += [Term(image=str(p), weight=-table.get(str(p), 1.0)) for p in not_images]
    if not any(term.weight > 0 for term in terms):
        raise QueryError("give at least one TEXT or --image to search for (--not only steers away).")
    return terms


def parse_when(value: str | None, option: str, end: bool = False) -> datetime | None:
    """An ISO date or date-time (``2024-06-01``, ``2024-06-01T18:30``), a month (``2024-06``) or a
    year (``2024``) as local naive time. A month or year means its first moment, or with ``end``
    (``--before``, which excludes its bound) the first moment after it: ``--after 2024`` is
    2024-01-01 00:00, ``--before 2024`` is 2025-01-01 00:00 (all of 2024 passes both), and
    ``--before 2024-06`` is 2024-07-01. A full date or date-time is that moment either way.

    Raises:
        QueryError: not an ISO date, or outside years :data:`FIRST_YEAR` to :data:`LAST_YEAR`
            (or one this system cannot turn into a timestamp, as the catalog must).
    """
    if value is None:
        return None
    try:
        moment = datetime.fromisoformat(_whole_period(value.strip(), end))
    except ValueError as exc:
        raise QueryError(
            f"{option} takes a date like 2024, 2024-06, 2024-06-01 or 2024-06-01T18:30 (got {value!r})."
        ) from exc
    out_of_range = QueryError(f"{option} takes a date from {FIRST_YEAR}-01-01 to {LAST_YEAR}-12-31 (got {value!r}).")
    if not FIRST_YEAR <= moment.year <= LAST_YEAR:
        raise out_of_range
    try:
        local = moment.astimezone().replace(tzinfo=None) if moment.tzinfo else moment
    except (ValueError, OverflowError, OSError) as exc:  # shifted past year 1 or 9999
        raise out_of_range from exc
    if not FIRST_YEAR <= local.year <= LAST_YEAR:
        raise out_of_range
    try:
        local.timestamp()  # what the catalog compares file times with
    except (ValueError, OverflowError, OSError) as exc:  # e.g. before 1970 on some systems
        raise QueryError(
            f"{option} {value!r} cannot be turned into a timestamp on this system ({exc}); give a later date."
        ) from exc
    return local


_YEAR_OR_MONTH = re.compile(r"(\d{4})(?:-(\d{2}))?")


def _whole_period(value: str, end: bool = False) -> str:
    """``2024`` -> ``2024-01-01``, ``2024-06`` -> ``2024-06-01``; with ``end`` the first day after
    the period (``2025-01-01``, ``2024-07-01``); anything else as it is."""
    match = _YEAR_OR_MONTH.fullmatch(value)
    if match is None:
        return value
    year, month = int(match[1]), match[2]
    if month is not None and not 1 <= int(month) <= 12:
        return value  # fromisoformat refuses it, naming the option
    if not end:
        return f"{year:04d}-{month or '01'}-01"
    if month is None or int(month) == 12:
        # The year after; 9999 has none a datetime can hold, so its last moment stands in.
        return f"{year + 1:04d}-01-01" if year < 9999 else "9999-12-31T23:59:59.999999"
    return f"{year:04d}-{int(month) + 1:02d}-01"


def build_filter(
    under: Sequence[str] = (),
    after: str | None = None,
    before: str | None = None,
    extensions: Sequence[str] = (),
    contains: Sequence[str] = (),
    media: str = ALL,
) -> ImageFilter:
    """An image filter from ``--under``, ``--after``, ``--before``, ``--ext``, ``--contains`` and
    ``--media`` values.

    Raises:
        QueryError: a date :func:`parse_when` refuses, --after not before --before, a folder
            or extension that is not valid UTF-8 (no indexed path has such a name), a
            ``--contains`` text without letters or digits, or a ``media`` other than all,
            photos or videos.
    """
    if media not in (ALL, PHOTOS, VIDEOS):
        raise QueryError(f"--media takes all, photos or videos (got {media!r}).")
    for folder in map(str, under):
        if not is_utf8(folder):
            raise QueryError(
                f"--under {folder!r} is not valid UTF-8; xmr skips files with such names when indexing, so none is under it."
            )
    for value in extensions:
        check_text(value, "--ext")
    folders = tuple(os.path.abspath(os.path.expanduser(str(folder))) for folder in under)
    suffixes = tuple(
        sorted({"." + e.strip().lower().lstrip(".") for value in extensions for e in value.split(",") if e.strip()})
    )
    start, end = parse_when(after, "--after"), parse_when(before, "--before", end=True)
    if start and end and start >= end:
        raise QueryError(f"--after ({after}) must come before --before ({before}).")
    for words in contains:
        check_text(words, "--contains")
        if not tokens(words):
            raise QueryError(f"--contains takes words with letters or digits, e.g. --contains 42.50 (got {words!r}).")
    return ImageFilter(
        under=folders, after=start, before=end, extensions=suffixes, contains=tuple(contains), media=media
    )
