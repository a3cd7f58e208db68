"""Turn command-line query options into query terms and an image filter.

Syntax (documented in README.md): positive texts and ``--image`` paths, ``--not TEXT`` and
``--not-image PATH`` for terms to steer away from, ``--weight W:TERM`` to weigh a term
(``TERM`` is one of the texts or image paths given; the sign comes from where it was given).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from datetime import datetime

from index.records import ImageFilter
from retrieval.errors import QueryError
from retrieval.results import Term


def parse_weights(specs: Sequence[str]) -> dict[str, float]:
    """``["2:beach", "0.5:ref.jpg"]`` -> ``{"beach": 2.0, "ref.jpg": 0.5}``."""
    weights: dict[str, float] = {}
    for spec in specs:
        number, sep, term = spec.partition(":")
        try:
            weight = float(number)
        except ValueError:
            weight = float("nan")
        if not sep or not term or not weight > 0:
            raise QueryError(f"--weight takes WEIGHT:TERM with a positive number, e.g. --weight 2:beach (got {spec!r}).")
        weights[term] = weight
    return weights


def build_terms(texts: Sequence[str] = (), images: Sequence[str] = (), not_texts: Sequence[str] = (), not_images: Sequence[str] = (), weights: Sequence[str] = ()) -> list[Term]:
    """Query terms from the options; every ``--weight`` must name a given term."""
    table = parse_weights(weights)
    named = {*texts, *not_texts, *map(str, images), *map(str, not_images)}
    unknown = sorted(set(table) - named)
    if unknown:
        raise QueryError(f"--weight names {', '.join(map(repr, unknown))}, which is not among the query's texts or images.")
    terms = [Term(text=t, weight=table.get(t, 1.0)) for t in texts]
    terms += [Term(image=str(p), weight=table.get(str(p), 1.0)) for p in images]
    terms += [Term(text=t, weight=-table.get(t, 1.0)) for t in not_texts]
    terms += [Term(image=str(p), weight=-table.get(str(p), 1.0)) for p in not_images]
    if not any(term.weight > 0 for term in terms):
        raise QueryError("give at least one TEXT or --image to search for (--not only steers away).")
    return terms


def parse_when(value: str | None, option: str) -> datetime | None:
    """An ISO date or date-time (``2024-06-01``, ``2024-06-01T18:30``) as local naive time."""
    if value is None:
        return None
    try:
        moment = datetime.fromisoformat(value)
    except ValueError as exc:
        raise QueryError(f"{option} takes a date like 2024-06-01 or 2024-06-01T18:30 (got {value!r}).") from exc
    return moment.astimezone().replace(tzinfo=None) if moment.tzinfo else moment


def build_filter(under: Sequence[str] = (), after: str | None = None, before: str | None = None, extensions: Sequence[str] = ()) -> ImageFilter:
    """An image filter from ``--under``, ``--after``, ``--before`` and ``--ext`` values."""
    folders = tuple(os.path.abspath(os.path.expanduser(str(folder))) for folder in under)
    suffixes = tuple(sorted({"." + e.strip().lower().lstrip(".") for value in extensions for e in value.split(",") if e.strip()}))
    start, end = parse_when(after, "--after"), parse_when(before, "--before")
    if start and end and start >= end:
        raise QueryError(f"--after ({after}) must come before --before ({before}).")
    return ImageFilter(under=folders, after=start, before=end, extensions=suffixes)
