"""Which files are videos, what they are served as, and the lazy import of PyAV (the ``video`` extra)."""

from __future__ import annotations

import os
from types import ModuleType

from index.deps import attempt_import

__all__ = [
    "VIDEO_EXTENSIONS",
    "VIDEO_HINT",
    "VIDEO_MEDIA_TYPES",
    "is_video",
    "require_av",
    "video_available",
    "video_format",
]

VIDEO_EXTENSIONS = frozenset({".mp4", ".mov", ".m4v", ".mkv", ".webm", ".avi", ".3gp"})
VIDEO_HINT = "video support is not installed: pip install 'xmr[video]' (PyAV, which ships FFmpeg)"
# The catalog's format column for a video: its extension, upper-case, like Pillow's format names.
VIDEO_MEDIA_TYPES = {
    "MP4": "video/mp4",
    "M4V": "video/mp4",
    "MOV": "video/quicktime",
    "MKV": "video/x-matroska",
    "WEBM": "video/webm",
    "AVI": "video/x-msvideo",
    "3GP": "video/3gpp",
}


def is_video(path: str) -> bool:
    """Whether ``path`` has a video extension (case-insensitive)."""
    return os.path.splitext(path)[1].lower() in VIDEO_EXTENSIONS


def video_format(path: str) -> str:
    """The catalog format of a video file: its extension, upper-case ("MP4", "MOV", ...)."""
    return os.path.splitext(path)[1].lstrip(".").upper()


def require_av() -> ModuleType:
    """The PyAV module, or MissingDependencyError naming the install command."""
    return attempt_import("av", VIDEO_HINT)


def video_available() -> bool:
    """Whether PyAV can be imported (videos are indexed only then)."""
    try:
        require_av()
    except ImportError:
        return False
    return True
