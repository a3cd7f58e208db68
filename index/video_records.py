"""Plain records of videos and their moments, and the writes an index run asks of the catalog.

A video file is a row of ``images`` (kind ``"video"``, no vector of its own); its moments
are rows of ``moments``, each owning a vector id in the image index. The writes below are
applied in order in one transaction by ``Catalog.apply_videos``.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Union

import numpy as np

from index.records import FileStat

__all__ = [
    "AddMoments",
    "CopyVideo",
    "FailVideo",
    "FinishVideo",
    "MomentRecord",
    "NewMoment",
    "StartVideo",
    "TouchVideo",
    "VideoMeta",
    "VideoOp",
    "VideoRecord",
    "group_frames",
]


@dataclass(frozen=True)
class VideoMeta:
    """What probing a video file tells."""

    width: int  # pixels, upright
    height: int  # pixels, upright
    format: str  # the extension upper-case, e.g. "MP4", "MOV"
    duration: float  # seconds
    codec: str  # FFmpeg decoder name, e.g. "h264"
    fps: float  # average frames per second (0.0 when unknown)
    rotation: int  # degrees counter-clockwise that turn frames upright
    captured_at: datetime | None = None  # from the container's creation tags (naive local time)


@dataclass(frozen=True)
class VideoRecord:
    """A video's row of ``videos``."""

    id: int  # the file's images row id
    duration: float  # seconds
    codec: str
    fps: float
    rotation: int
    interval: float  # seconds between samples it was indexed with
    done: float  # seconds of the video its moments cover (a killed run resumes here)


@dataclass(frozen=True)
class MomentRecord:
    """One moment: a vector id and the stretch of its video."""

    id: int  # vector id (shares the image index with photos)
    video_id: int  # images row of the video file
    start: float  # seconds: the frame it was embedded from
    end: float  # seconds: where the next moment starts


@dataclass(frozen=True)
class NewMoment:
    """A moment ready to be written."""

    start: float  # seconds
    end: float  # seconds
    vector: bytes  # float32 little-endian unit vector


@dataclass(frozen=True)
class StartVideo:
    """(Re)start indexing a video from its beginning: its row becomes partial, old moments go."""

    stat: FileStat
    identity: str  # sampled-block identity (retrieval.video.identity)
    meta: VideoMeta
    interval: float  # seconds between samples


@dataclass(frozen=True)
class AddMoments:
    """Moments of the video at ``path``, which now covers ``[0, done)`` seconds."""

    path: str
    moments: tuple[NewMoment, ...]
    done: float


@dataclass(frozen=True)
class FinishVideo:
    """Every moment of the video at ``path`` is written: it is indexed."""

    path: str
    done: float  # seconds covered (its duration)


@dataclass(frozen=True)
class FailVideo:
    """The video at ``stat.path`` cannot be indexed: its moments go, the reason is kept."""

    stat: FileStat
    error: str
    identity: str = ""


@dataclass(frozen=True)
class CopyVideo:
    """A new file with the bytes of an indexed video: it gets copies of that video's moments."""

    stat: FileStat
    source_id: int  # images row of the indexed video


@dataclass(frozen=True)
class TouchVideo:
    """Only the file's modification time changed (same identity): its row takes the new stat."""

    stat: FileStat


VideoOp = Union[StartVideo, AddMoments, FinishVideo, FailVideo, CopyVideo, TouchVideo]


def group_frames(rows: Iterable[Sequence[int | None]]) -> dict[tuple[int, int], np.ndarray]:
    """``(moment id, width, height)`` rows as sorted int64 moment ids per ``(width, height)``; rows
    without a size are left out."""
    grouped: dict[tuple[int, int], list[int]] = {}
    for moment_id, width, height in rows:
        if moment_id is not None and width and height:
            grouped.setdefault((int(width), int(height)), []).append(int(moment_id))
    return {size: np.sort(np.asarray(ids, dtype=np.int64)) for size, ids in sorted(grouped.items())}
