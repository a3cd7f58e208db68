"""File names and texts made safe for a terminal line, and sizes written as people read them.

A file may be named with anything but "/" and NUL: an escape sequence (``\\x1b]...``) that
retitles the terminal or rewrites what is on screen, a newline that splits one result into
two lines, a right-to-left override that shows ``gpj.exe`` as ``exe.jpg``. Such a name is
written the way bash's ``$'...'`` quoting spells it (as GNU ls does on a terminal), so
what is shown is what the name holds, and pasting it into a shell names the same file;
every other name is written as it is. ``--json`` and ``--print0`` carry names exactly.
"""

from __future__ import annotations

import re

__all__ = ["defanged", "human_bytes", "shown"]

# C0 controls (newline, tab, ESC ...), DEL, C1 controls (CSI 0x9b ...), Unicode line and
# paragraph separators, bidirectional overrides and isolates, and lone surrogates (bytes
# of a name that is not UTF-8, as Python's surrogateescape keeps them).
_UNSAFE = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069\ud800-\udfff]")
_NAMED = {"\n": "\\n", "\t": "\\t", "\r": "\\r", "\x1b": "\\E", "\\": "\\\\", "'": "\\'"}


def _quoted(char: str) -> str:
    if char in _NAMED:
        return _NAMED[char]
    code = ord(char)
    if 0xDC80 <= code <= 0xDCFF:  # surrogateescape of the byte code - 0xDC00
        return f"\\x{code - 0xDC00:02x}"
    if code < 0x80:
        return f"\\x{code:02x}" if _UNSAFE.match(char) else char
    return f"\\u{code:04x}" if _UNSAFE.match(char) else char


def shown(text: str) -> str:
    """``text`` as one safe terminal line: as it is, or bash-quoted (``$'a\\nb.jpg'``) when it
    holds a control character, a line separator, a bidi override or a lone surrogate."""
    if not _UNSAFE.search(text):
        return text
    return "$'" + "".join(_quoted(char) for char in text) + "'"


def defanged(message: str) -> str:
    """A message (which may quote a file name) with every character a terminal would act on
    written as an escape (``\\E``, ``\\x07``), its own line breaks kept: for error messages,
    whose text is not one name and so is not bash-quoted whole."""
    return _UNSAFE.sub(lambda m: m[0] if m[0] == "\n" else _quoted(m[0]), message)


def human_bytes(count: int | float) -> str:
    """A byte count as people read it: ``912 B``, ``4.2 kB``, ``38.1 MB``, ``1.27 GB`` (powers of 1000)."""
    value = float(count)
    if abs(value) < 999.5:
        return f"{int(value)} B"
    for unit in ("kB", "MB", "GB", "TB"):
        value /= 1000
        if abs(value) < 999.5 or unit == "TB":
            return f"{value:.3g} {unit}" if abs(value) < 999.5 else f"{value:.0f} {unit}"
    raise AssertionError("unreachable")  # the loop returns at TB
