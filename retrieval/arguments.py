"""Checks of what callers of the library API hand in, before any work starts.

A wrong type deep inside (``os.path`` on an int, a comparison of a float with a string)
surfaces as a raw ``TypeError`` far from its cause, or worse, as a silent empty answer
(a NaN score floor, a NaN query vector). These checks name the argument and what it takes.
"""

from __future__ import annotations

import math
import numbers
import os
from collections.abc import Iterable

import numpy as np

from retrieval.errors import ArgumentTypeError, QueryError

__all__ = ["check_min_score", "check_path", "check_query_vector", "check_text_option", "index_roots"]


def check_path(value: object, name: str, optional: bool = False) -> None:
    """Raise ArgumentTypeError unless ``value`` is a path (a str or an ``os.PathLike``; None when ``optional``)."""
    if value is None and optional:
        return
    if isinstance(value, bytes) or not isinstance(value, (str, os.PathLike)):
        taken = "a path (str or pathlib.Path)" + (" or None" if optional else "")
        hint = "; decode bytes with os.fsdecode(name)" if isinstance(value, bytes) else ""
        raise ArgumentTypeError(f"{name} takes {taken}, not {type(value).__name__} ({value!r}){hint}")


def check_text_option(value: object, name: str) -> None:
    """Raise ArgumentTypeError unless ``value`` is a string (or None)."""
    if value is not None and not isinstance(value, str):
        raise ArgumentTypeError(f"{name} takes a string, not {type(value).__name__} ({value!r})")


def index_roots(paths: object) -> list[str]:
    """The roots ``Library.index`` walks: one path (str, Path or bytes) or a sequence of them.

    Raises:
        ArgumentTypeError: ``paths`` is None, a number, or a sequence holding anything else.
    """
    if isinstance(paths, (str, os.PathLike, bytes)):
        paths = [paths]
    if not isinstance(paths, Iterable):
        raise ArgumentTypeError(
            f"index takes a folder or file path, or a list of them, not {type(paths).__name__} ({paths!r})"
        )
    roots = []
    for item in paths:
        if isinstance(item, bytes):
            roots.append(os.fsdecode(item))  # a name in the file system's own bytes, as os functions take it
        elif isinstance(item, (str, os.PathLike)):
            roots.append(os.fspath(item))
        else:
            raise ArgumentTypeError(
                f"index takes paths (str, pathlib.Path or bytes), not {type(item).__name__} ({item!r})"
            )
    return [str(root) for root in roots]


def check_min_score(value: object, name: str = "min_score") -> float | None:
    """``value`` as a float, or None.

    Raises:
        QueryError: not a number, or NaN (no score passes it).
    """
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise QueryError(f"{name} takes a number such as 0.2, not {type(value).__name__} ({value!r})")
    if math.isnan(float(value)):
        raise QueryError(f"{name} takes a number such as 0.2, not nan (no score passes it)")
    return float(value)


def check_query_vector(query: object, dim: int) -> np.ndarray:
    """``query`` as a float32 row ``(1, dim)`` of finite numbers that are not all zero.

    Raises:
        QueryError: the wrong size, NaN or infinite entries, or a zero vector (nothing to rank by).
    """
    try:
        array = np.asarray(query, dtype=np.float32)
    except (TypeError, ValueError) as exc:
        raise QueryError(f"the query vector must be {dim} numbers, not {type(query).__name__}") from exc
    if array.size != dim:
        raise QueryError(f"the query vector must have {dim} numbers (the library's embedding size), not {array.size}")
    row = array.reshape(1, dim)
    if not np.isfinite(row).all():
        raise QueryError("the query vector holds NaN or infinite numbers; every score would be NaN")
    if not np.any(row):
        raise QueryError("the query vector is all zeros; it ranks nothing (use a unit vector, e.g. from embed_text)")
    return row
