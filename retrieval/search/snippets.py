"""The text a hit matched in: an OCR line (with its box), a caption, a keyword or a name."""

from __future__ import annotations

from collections.abc import Sequence

from index.keywords import SOURCES, contains_phrase, name_words, tokens
from index.records import DocSources
from retrieval.results import Match

__all__ = ["SNIPPET_SOURCES", "find_match"]

SNIPPET_SOURCES = {"ocr": "ocr", "captions": "caption", "tags": "keywords", "names": "filename"}  # as shown to users


def find_match(sources: DocSources, phrases: Sequence[tuple[str, ...]]) -> Match | None:
    """Where the first phrase that matches lies, preferring OCR lines, then captions,
    keywords and names; None when no phrase matches."""
    texts: dict[str, list[tuple[str, object]]] = {
        "ocr": [(body, box) for body, _, box in sources.ocr],
        "captions": [(c, None) for c in sources.captions],
        "tags": [(t, None) for t in sources.tags],
        "names": [(n, None) for n in name_words(sources.path)],
    }
    for phrase in phrases:
        for source in SOURCES:
            found = _in_texts(texts[source], phrase)
            if found is not None:
                body, box = found
                return Match(body, SNIPPET_SOURCES[source], tuple(box) if isinstance(box, tuple) else None)
    return None


def _in_texts(texts: list[tuple[str, object]], phrase: tuple[str, ...]) -> tuple[str, object] | None:
    """The text holding ``phrase``; a phrase running over two texts (an OCR line break) gives the first."""
    joined: list[tuple[str, int]] = []
    for number, (body, _) in enumerate(texts):
        words = tokens(body)
        if contains_phrase(words, phrase):
            return texts[number]
        joined += [(w, number) for w in words]
    words = [w for w, _ in joined]
    for start in range(len(words) - len(phrase) + 1):
        if tuple(words[start : start + len(phrase)]) == phrase:
            return texts[joined[start][1]]
    return None
