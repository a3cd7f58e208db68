"""Files an index run finds but does not read, counted by kind, each kind with the way to read it.

A folder of photos holds more than xmr reads today: HEIC from a phone without the ``heif``
extra, JPEG XL, AVIF on a Pillow without it. Passing them over without a word looks like a
broken index, so the walk counts them here and the report lists each kind once, with a
few example paths and the fix (an extra to install). Kinds are data
(:class:`SkipRule`, registered with :func:`add_skip_rule`): a room that adds a kind of
file (videos, RAW photos) registers a rule for the case where its extra is missing. A file
whose extension the run reads is never counted, so installing the extra ends the notice.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field

from retrieval.results import SkippedKind

__all__ = ["SkipRule", "SkippedFiles", "add_skip_rule", "get_skip_rule", "list_skip_rules", "remove_skip_rule"]

EXAMPLES = 5  # example paths kept per kind


@dataclass(frozen=True)
class SkipRule:
    """A kind of file that xmr may not read, recognised by its extension."""

    kind: str  # what the files are, plural, e.g. "HEIC/HEIF images"
    extensions: frozenset[str]  # lower-case, with the dot
    hint: str  # how to have them read, e.g. "pip install 'xmr[heif]'"


_RULES: dict[str, SkipRule] = {}


def add_skip_rule(rule: SkipRule) -> None:
    """Register ``rule`` (replacing one of the same kind)."""
    _RULES[rule.kind] = rule


def remove_skip_rule(kind: str) -> None:
    """Forget the rule of ``kind`` (no error when there is none)."""
    _RULES.pop(kind, None)


def list_skip_rules() -> list[SkipRule]:
    """Every registered rule, in registration order."""
    return list(_RULES.values())


def get_skip_rule(extension: str) -> SkipRule | None:
    """The rule for files ending in ``extension`` (any case, with the dot), or None."""
    extension = extension.lower()
    return next((rule for rule in _RULES.values() if extension in rule.extensions), None)


add_skip_rule(
    SkipRule("HEIC/HEIF images", frozenset({".heic", ".heif", ".hif"}), "pip install 'xmr[heif]' (pillow-heif)")
)
add_skip_rule(
    SkipRule(
        "JPEG XL images",
        frozenset({".jxl"}),
        "Pillow does not read JPEG XL; convert them, e.g. djxl photo.jxl photo.png",
    )
)
add_skip_rule(SkipRule("AVIF images", frozenset({".avif"}), "this Pillow reads no AVIF; pip install -U 'pillow>=11.3'"))
add_skip_rule(
    SkipRule(
        "JPEG 2000 images",
        frozenset({".jp2", ".j2k", ".jpx", ".jpf", ".j2c"}),
        "this Pillow was built without OpenJPEG; pip install --force-reinstall pillow (the PyPI wheels have it)",
    )
)


@dataclass
class SkippedFiles:
    """A tally of skipped files by kind, filled during one walk."""

    counts: dict[str, int] = field(default_factory=dict)  # kind -> files
    examples: dict[str, list[str]] = field(default_factory=dict)  # kind -> first EXAMPLES paths

    def offer(self, path: str, extensions: frozenset[str]) -> bool:
        """Count ``path`` when a rule knows its kind and the run does not read its extension."""
        extension = os.path.splitext(path)[1].lower()
        rule = None if extension in extensions else get_skip_rule(extension)
        if rule is None:
            return False
        self.counts[rule.kind] = self.counts.get(rule.kind, 0) + 1
        kept = self.examples.setdefault(rule.kind, [])
        if len(kept) < EXAMPLES:
            kept.append(path)
        return True

    def report(self) -> tuple[SkippedKind, ...]:
        """One entry per kind found, most files first."""
        kinds = sorted(self.counts, key=lambda kind: (-self.counts[kind], kind))
        return tuple(
            SkippedKind(kind, self.counts[kind], tuple(self.examples[kind]), _RULES[kind].hint) for kind in kinds
        )
