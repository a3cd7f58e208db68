"""The catalog schema's version and the names its rows use, importable without SQLAlchemy
(a command-line search reads the catalog without it: see :mod:`index.quick_catalog`)."""

from __future__ import annotations

__all__ = ["CATALOG_SCHEMA", "IMAGE", "IMAGES", "SIDECAR", "TEXTS", "VIDEO", "floor_key"]

# 1: images, texts, tombstones, meta (generation counter).
# 2: images.phash, the perceptual hash of each image's pixels (duplicates); see index.migrations.
# 3: text read from photos (ocr_results, ocr_lines, keyed by content hash) and the keyword
#    index (keyword_docs + SQLite FTS5 keyword_fts / PostgreSQL tsvector + GIN); see index.migrations.
# 4: images.dev/images.ino (which file was indexed, for /file); a tombstone floor per corpus
#    (see index.migrations).
# 5: videos (issue 19): images.kind tells photos from video files; tables videos and moments
#    (moment vectors share the images id space); see index.migrations.
CATALOG_SCHEMA = 5
IMAGES = "images"  # the image corpus (photos and video moments)
TEXTS = "texts"  # the text corpus (add-texts, sidecar captions)
IMAGE = "image"  # images.kind of a photo
VIDEO = "video"  # images.kind of a video file (its vectors are its moments')
SIDECAR = "sidecar:"  # texts.source prefix of captions found next to or inside an image


def floor_key(corpus: str) -> str:
    """The ``meta`` key of ``corpus``'s tombstone floor (tombstones at or below it were pruned)."""
    return f"tombstone_floor.{corpus}"
