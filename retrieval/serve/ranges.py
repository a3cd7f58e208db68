"""HTTP byte ranges (RFC 9110 section 14): which part of a file a ``Range`` header asks for.

A video player seeks by asking for byte ranges of the original file. One range is served
(``bytes=A-B``, ``bytes=A-``, ``bytes=-N``); a header that is not a single byte range is
ignored and the whole file served, which the RFC allows; a range wholly past the end is
refused (416).
"""

from __future__ import annotations

import re

from retrieval.errors import RangeNotSatisfiableError

__all__ = ["byte_range"]

_RANGE = re.compile(r"bytes=(\d*)-(\d*)")


def byte_range(header: str | None, size: int) -> tuple[int, int] | None:
    """``(first, last)`` byte offsets (inclusive) that ``header`` asks for in a file of ``size`` bytes,
    or None to serve the whole file.

    Raises:
        RangeNotSatisfiableError: the range starts past the end of the file (or asks for none of it).
    """
    match = _RANGE.fullmatch((header or "").strip())
    if match is None or not (match.group(1) or match.group(2)):
        return None  # absent, several ranges or not bytes: the whole file
    first, last = match.group(1), match.group(2)
    if not first:  # the last N bytes
        count = int(last)
        if count == 0 or size == 0:
            raise RangeNotSatisfiableError(f"the range {header!r} asks for no byte of a {size}-byte file")
        return max(0, size - count), size - 1
    start = int(first)
    end = size - 1 if not last else min(int(last), size - 1)
    if start >= size or (last and int(last) < start):
        if last and int(last) < start:
            return None  # invalid: ignored like any other unreadable Range
        raise RangeNotSatisfiableError(f"the range {header!r} starts past the end of the {size}-byte file")
    return start, end
