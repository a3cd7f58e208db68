"""Index the videos of a plan: sample frames, group them into moments, embed, commit in batches.

One reader thread walks the videos in plan order. For each it decides from the file's
sampled-block identity (:mod:`retrieval.video.identity`) what is needed:

- same identity as its own row: only the timestamp changed (touch), or a killed run left
  it partial (resume from where its committed moments end);
- the identity of another indexed video: a copy, which gets that video's moments
  without a frame decoded;
- otherwise it is read from the start (new, or edited: its old moments go).

Decoded frames are grouped into moments (:mod:`retrieval.video.moments`); each moment's
frame is preprocessed in the reader thread and embedded here, ``batch_size`` at a time,
and every batch is one catalog transaction (moments, how far the video got, videos
started and finished), so a kill loses at most a batch and the next run resumes. A video
that cannot be read is recorded as failed with the reason; it never stops the run.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import numpy as np

from index.catalog import Catalog
from index.records import INDEXED, PARTIAL, FileStat, ImageRecord
from index.schema import VIDEO
from index.video_records import (
    AddMoments,
    CopyVideo,
    FailVideo,
    FinishVideo,
    NewMoment,
    StartVideo,
    TouchVideo,
    VideoMeta,
    VideoOp,
)
from retrieval.errors import VideoDecodeError
from retrieval.ingest.commit import Progress
from retrieval.ingest.config import IngestConfig
from retrieval.ingest.scan import Plan
from retrieval.models.encoder import Encoder
from retrieval.video.formats import is_video, video_format
from retrieval.video.identity import video_identity_checked

__all__ = ["VideoPlan", "VideoTally", "index_videos", "split_videos"]

log = logging.getLogger(__name__)


@dataclass
class VideoPlan:
    """The videos of an index plan."""

    todo: list[FileStat] = field(default_factory=list)  # videos to read (new, changed or partial)
    previous: dict[str, ImageRecord] = field(default_factory=dict)  # their rows, when they have one
    skipped: list[str] = field(default_factory=list)  # videos not read: video support is not installed
    damaged: set[str] = field(default_factory=set)  # videos with a damaged moment vector: read again whole


@dataclass
class VideoTally:
    """What indexing the videos did."""

    added: int = 0  # new videos read or copied
    updated: int = 0  # changed videos read again
    resumed: int = 0  # partial videos finished
    touched: int = 0  # only the timestamp changed
    failed: list[tuple[str, str]] = field(default_factory=list)  # (path, why)
    moments: int = 0  # moments written
    encoded: int = 0  # frames that went through the encoder


def split_videos(plan: Plan, available: bool) -> VideoPlan:
    """Take the videos out of ``plan.todo`` (images stay); without video support they are only listed."""
    videos = [stat for stat in plan.todo if is_video(stat.path)]
    if not videos:
        return VideoPlan()
    plan.todo = [stat for stat in plan.todo if not is_video(stat.path)]
    previous = {stat.path: plan.previous.pop(stat.path) for stat in videos if stat.path in plan.previous}
    if not available:
        return VideoPlan(skipped=[stat.path for stat in videos])
    damaged = {stat.path for stat in videos if stat.path in plan.reembed}
    return VideoPlan(videos, previous, damaged=damaged)


@dataclass(frozen=True)
class _Moment:
    """A moment whose frame is preprocessed and waits for the encoder."""

    path: str
    start: float
    end: float
    pixels: object  # encoder.preprocess output


@dataclass(frozen=True)
class _Done:
    """A video that was handled (for counting once its batch is committed)."""

    path: str
    outcome: str  # "added", "updated", "resumed", "touched", "failed"
    error: str = ""


_Event = VideoOp | _Moment | _Done


def index_videos(
    videos: VideoPlan,
    encoder: Encoder,
    catalog: Catalog,
    config: IngestConfig,
    on_progress: Callable[[Progress], None] | None = None,
    progress_from: tuple[int, int, int] = (0, 0, 0),
) -> VideoTally:
    """Index ``videos.todo`` one video after another, committing every ``config.batch_size`` moments.

    ``progress_from`` is ``(done, total, failed)`` of the images read before, so the
    progress callback counts the whole run.
    """
    tally = VideoTally()
    if not videos.todo:
        return tally
    events: queue.Queue[_Event | None] = queue.Queue(maxsize=max(4, config.batch_size * config.prefetch_batches))
    stop = threading.Event()
    reader = threading.Thread(
        target=_produce, args=(videos, encoder, catalog, config, events, stop), name="xmr-video", daemon=True
    )
    reader.start()
    start, (done0, total0, failed0) = time.perf_counter(), progress_from
    pending: list[_Event] = []
    try:
        for event in _drain(events, reader):
            pending.append(event)
            if sum(isinstance(e, _Moment) for e in pending) >= config.batch_size:
                _commit(pending, encoder, catalog, tally)
                pending = []
                _report(on_progress, tally, done0, total0 + len(videos.todo), failed0, start)
        _commit(pending, encoder, catalog, tally)
        _report(on_progress, tally, done0, total0 + len(videos.todo), failed0, start)
    finally:
        stop.set()
        while reader.is_alive():  # let a reader blocked on a full queue see the stop
            try:
                events.get(timeout=0.05)
            except queue.Empty:
                pass
        reader.join()
    return tally


def _drain(events: queue.Queue, reader: threading.Thread) -> Iterator[_Event]:
    while True:
        event = events.get()
        if event is None:
            return
        if isinstance(event, BaseException):
            raise event
        yield event


def _report(
    on_progress: Callable[[Progress], None] | None, tally: VideoTally, done: int, total: int, failed: int, start: float
) -> None:
    if on_progress is not None:
        finished = tally.added + tally.updated + tally.resumed + tally.touched + len(tally.failed)
        on_progress(Progress(done + finished, total, failed + len(tally.failed), time.perf_counter() - start))


def _commit(pending: list[_Event], encoder: Encoder, catalog: Catalog, tally: VideoTally) -> None:
    """Embed the pending moments and write everything pending in one transaction."""
    if not pending:
        return
    moments = [e for e in pending if isinstance(e, _Moment)]
    vectors: dict[int, bytes] = {}
    if moments:
        embedded = np.asarray(encoder.encode_images(encoder.stack([m.pixels for m in moments])), dtype="<f4")  # (B, D)
        vectors = {id(m): row.tobytes() for m, row in zip(moments, embedded)}
    ops: list[VideoOp] = []
    for event in pending:
        if isinstance(event, _Moment):
            moment = NewMoment(event.start, event.end, vectors[id(event)])
            last = ops[-1] if ops else None
            if isinstance(last, AddMoments) and last.path == event.path:
                ops[-1] = AddMoments(event.path, (*last.moments, moment), event.end)
            else:
                ops.append(AddMoments(event.path, (moment,), event.end))
        elif not isinstance(event, _Done):
            ops.append(event)
    catalog.apply_videos(ops)
    tally.moments += len(moments)
    tally.encoded += len(moments)
    for event in pending:
        if isinstance(event, _Done):
            if event.outcome == "failed":
                tally.failed.append((event.path, event.error))
            else:
                setattr(tally, event.outcome, getattr(tally, event.outcome) + 1)


# ---- the reader thread ---------------------------------------------------------------------


def _produce(
    videos: VideoPlan,
    encoder: Encoder,
    catalog: Catalog,
    config: IngestConfig,
    events: queue.Queue,
    stop: threading.Event,
) -> None:
    def put(event: object) -> None:
        while not stop.is_set():
            try:
                events.put(event, timeout=0.1)
                return
            except queue.Full:
                continue
        raise _Stopped

    try:
        for stat in videos.todo:
            row = videos.previous.get(stat.path)
            _one_video(stat, row, stat.path in videos.damaged, encoder, catalog, config, put)
        put(None)
    except _Stopped:
        return
    except BaseException as exc:  # a bug, not a bad file: the run stops and says why
        try:
            put(exc)
        except _Stopped:
            pass


class _Stopped(Exception):
    """The consumer stopped (interrupted or failed): the reader returns."""


def _one_video(
    stat: FileStat,
    row: ImageRecord | None,
    damaged: bool,
    encoder: Encoder,
    catalog: Catalog,
    config: IngestConfig,
    put: Callable[[object], None],
) -> None:
    """Decide what ``stat`` needs and emit its events; a bad file becomes a failure, never an exception.
    ``damaged``: a moment vector of its row is damaged, so the video is read again whole."""
    try:
        identity, status = video_identity_checked(stat.path)
    except OSError as exc:
        _fail(stat, f"cannot read file: {exc.strerror or exc}", "", put)
        return
    stat = FileStat.of(stat.path, status)  # the file whose blocks were read: its device and inode are recorded
    same = row is not None and row.content_hash == identity
    if same and row.state == INDEXED and not damaged:  # type: ignore[union-attr]
        put(TouchVideo(stat))  # only the timestamp changed
        put(_Done(stat.path, "touched"))
        return
    if same and row.state == PARTIAL and not damaged:  # type: ignore[union-attr]
        video = catalog.video(row.id)  # type: ignore[union-attr]
        if row.stat != stat:  # type: ignore[union-attr]  # its time changed, or its identity was not recorded
            put(TouchVideo(stat))
        resume_from = video.done if video is not None else 0.0  # where its committed moments end
        _read_video(stat, identity, resume_from, "resumed", encoder, config, put)
        return
    source = catalog.by_hash([identity]).get(identity)
    outcome = "added" if row is None else "updated"
    if source is not None and source.path != stat.path and source.kind == VIDEO:
        put(CopyVideo(stat, source.id))  # the same bytes are indexed elsewhere: no decoding
        put(_Done(stat.path, outcome))
        return
    _read_video(stat, identity, 0.0, outcome, encoder, config, put)


def _read_video(
    stat: FileStat,
    identity: str,
    resume_from: float,
    outcome: str,
    encoder: Encoder,
    config: IngestConfig,
    put: Callable[[object], None],
) -> None:
    """Sample, group and preprocess one video from ``resume_from`` seconds on, emitting its events."""
    from retrieval.video.frames import VideoReader
    from retrieval.video.moments import MomentGrouper

    sampling = config.video
    grouper = MomentGrouper(sampling.scenes)
    covered = resume_from  # seconds the emitted moments reach

    def emit(moment: object) -> None:
        nonlocal covered
        put(_Moment(stat.path, moment.start, moment.end, encoder.preprocess(moment.sample.image)))  # type: ignore[attr-defined]
        covered = moment.end  # type: ignore[attr-defined]

    try:
        with VideoReader(stat.path) as reader:
            info = reader.info
            if resume_from <= 0:
                meta = VideoMeta(
                    info.width,
                    info.height,
                    video_format(stat.path),
                    info.duration,
                    info.codec,
                    info.fps,
                    info.rotation,
                    info.captured_at,
                )
                put(StartVideo(stat, identity, meta, sampling.interval))
            try:
                for sample in reader.samples(sampling, start=resume_from):
                    closed = grouper.add(sample)
                    if closed is not None:
                        emit(closed)
            finally:
                if reader.stats.bad_packets:
                    log.warning("%s: %d damaged packets skipped", stat.path, reader.stats.bad_packets)
            for closed in grouper.finish(info.duration):
                emit(closed)
        put(FinishVideo(stat.path, covered))
        put(_Done(stat.path, outcome))
    except _Stopped:
        raise
    except Exception as exc:  # a bad file must never stop the run; keep the reason
        reason = str(exc) if isinstance(exc, VideoDecodeError) else f"{exc.__class__.__name__}: {exc}"
        if covered <= resume_from and grouper.open_start is None:
            _fail(stat, reason, identity, put)
            return
        # Broken after some moments: they are kept, the video counts as read up to there.
        for closed in grouper.finish(grouper.last_time):
            emit(closed)
        log.warning("%s: stopped reading at %.1f s (%s); its moments so far are kept", stat.path, covered, reason)
        put(FinishVideo(stat.path, covered))
        put(_Done(stat.path, "failed", f"read only up to {covered:.1f} s: {reason}"))


def _fail(stat: FileStat, reason: str, identity: str, put: Callable[[object], None]) -> None:
    put(FailVideo(stat, reason, identity))
    put(_Done(stat.path, "failed", reason))
