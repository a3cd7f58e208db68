"""Captions that travel with a photo: ``photo.jpg.txt`` or ``photo.txt`` beside it, and the
description embedded in the file (EXIF ImageDescription, XMP dc:description).
"""

from __future__ import annotations

import hashlib
import os

MAX_SIDECAR_BYTES = 64 * 1024  # a caption file, not a novel: larger files are ignored
MAX_CAPTIONS = 20  # per image


def sidecar_paths(image_path: str) -> tuple[str, str]:
    """Where captions of ``image_path`` may lie: ``photo.jpg.txt`` and ``photo.txt``."""
    return image_path + ".txt", os.path.splitext(image_path)[0] + ".txt"


def sidecar_mtime(image_path: str, text_files: dict[str, int]) -> int:
    """A stamp of the image's sidecar files in ``text_files`` (path -> mtime ns), compared with the
    one noted when its captions were read: 0 for none, the file's mtime for one, and a mix of
    both mtimes for two.

    The newest mtime alone missed a change: removing the older of two sidecars left it as it was,
    and the removed file's captions stayed. Nonzero whenever a sidecar exists.
    """
    stamps = [text_files[p] for p in dict.fromkeys(sidecar_paths(image_path)) if p in text_files]
    if len(stamps) < 2:
        return (stamps[0] or 1) if stamps else 0
    digest = hashlib.blake2b(f"{stamps[0]}:{stamps[1]}".encode(), digest_size=8).digest()
    return (int.from_bytes(digest, "little") >> 1) or 1  # a positive 63-bit int: fits the BIGINT column


def sidecar_captions(image_path: str, description: str | None = None, files: bool = True) -> list[str]:
    """The captions of ``image_path``: one per non-empty line of its sidecar files, then the
    embedded description; duplicates removed, order kept. Unreadable sidecars are skipped.

    ``files=False`` skips looking for sidecar files (a scan that just listed the folder saw
    none): two failed ``stat`` calls per image saved at ingest rates.
    """
    found: list[str] = []
    for candidate in sidecar_paths(image_path) if files else ():
        try:
            if os.path.getsize(candidate) > MAX_SIDECAR_BYTES:
                continue
            with open(candidate, encoding="utf-8") as handle:
                found += [line.strip() for line in handle if line.strip()]
        except (OSError, UnicodeDecodeError):
            continue
    if description and description.strip():
        found.append(description.strip())
    return list(dict.fromkeys(found))[:MAX_CAPTIONS]
