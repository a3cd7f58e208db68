"""Decode a video just enough to sample frames every few seconds and at scene cuts.

Decoding is most of the cost of indexing a video, so only what is needed is decoded:

- when keyframes come at least every sampling interval (phones write one every second or
  two), only keyframes are decoded (``skip_frame=NONKEY``): an order of magnitude less work,
  and cuts are seen at keyframe resolution;
- otherwise (long keyframe intervals, as in edited or screen-recorded videos) frames that no
  other frame refers to are skipped (``skip_frame=NONREF``) and the rest decoded in order.

FFmpeg decodes with its own threads (``thread_type=AUTO``) and scales each analysed frame
to a 32x18 signature and each sampled frame to the encoder's size in one swscale call;
full-size RGB frames are never made. A damaged packet is skipped, not fatal.
"""

from __future__ import annotations

import logging
import statistics
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

from PIL import Image

from retrieval.errors import VideoDecodeError
from retrieval.video.config import SampleConfig
from retrieval.video.formats import require_av
from retrieval.video.probe import VideoInfo, pick_stream, probe
from retrieval.video.scenes import SIGNATURE_SIZE, Signature, signature_of

__all__ = ["DecodeStats", "Sample", "VideoReader"]

log = logging.getLogger(__name__)

_PROBE_SECONDS = 30.0  # demuxed (not decoded) to measure keyframe intervals when the container has no index
_MAX_BAD_PACKETS = 200  # damaged packets in a row after which the rest of the file is given up
_TRANSPOSE = {90: Image.Transpose.ROTATE_90, 180: Image.Transpose.ROTATE_180, 270: Image.Transpose.ROTATE_270}


@dataclass(frozen=True)
class Sample:
    """One sampled frame."""

    time: float  # seconds from the start of the video
    image: Image.Image  # upright RGB, shorter side at most SampleConfig.frame_side
    signature: Signature  # for scene cuts and near-identical frames
    cut: bool  # the first frame after a scene cut (or the first sampled)


@dataclass
class DecodeStats:
    """What a reader decoded (for benchmarks and logs)."""

    decoded: int = 0  # frames decoded and analysed
    sampled: int = 0  # of those, frames handed out as samples
    bad_packets: int = 0  # damaged packets skipped
    keyframes_only: bool = False  # whether only keyframes were decoded


class VideoReader:
    """An open video file: its :class:`VideoInfo`, and its samples.

    Use as a context manager. ``source`` is a path or a binary file object (the server
    reads through a descriptor it has checked).

    Raises:
        MissingDependencyError: PyAV is not installed.
        VideoDecodeError: not a video FFmpeg can open, no video stream, or no decodable frame.
    """

    def __init__(self, source: str | Path | BinaryIO) -> None:
        av = require_av()
        self._av = av
        try:
            self._container: Any = av.open(source if not isinstance(source, Path) else str(source), "r")
        except (av.error.FFmpegError, OSError, UnicodeDecodeError) as exc:
            reason = getattr(exc, "strerror", None) or str(exc)
            raise VideoDecodeError(f"not a video FFmpeg can open ({reason})") from exc
        try:
            self._stream: Any = pick_stream(self._container)  # a PyAV VideoStream
            if self._stream is None:
                raise VideoDecodeError("the file has no video stream")
            if self._stream.codec_context is None:
                raise VideoDecodeError(
                    f"no decoder for the video codec {self._stream.codec_name or '?'} in this FFmpeg"
                )
            self._stream.thread_type = "AUTO"
            self.stats = DecodeStats()
            # Players count time from the stream's first timestamp; so do moments.
            self._base = float(self._stream.start_time * self._stream.time_base) if self._stream.start_time else 0.0
            self.info: VideoInfo = probe(self._container, self._stream, _rotation(self._first_frame()))
        except BaseException:
            self._container.close()
            raise

    def __enter__(self) -> VideoReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._container.close()

    def _first_frame(self) -> object:
        """Decode the first frame (rotation comes with frames; a stream that decodes nothing fails here)."""
        for frame in self._frames():
            return frame
        raise VideoDecodeError("no frame of the video stream could be decoded (damaged or unsupported)")

    def keyframe_interval(self) -> float | None:
        """Median seconds between keyframes (from the container's index, else from the first packets)."""
        stream = self._stream
        base = float(stream.time_base)
        times: list[float] = []
        entries = getattr(stream, "index_entries", None)  # the container's own index (MP4's stss), PyAV 14+
        if entries is not None and len(entries) > 2:
            times = [entry.timestamp * base for entry in entries if entry.flags & 1]
        if len(times) < 3:
            times = []
            self._seek(0.0)
            for packet in self._container.demux(stream):
                if packet.pts is None:
                    continue
                if packet.is_keyframe:
                    times.append(packet.pts * base)
                if packet.pts * base > _PROBE_SECONDS and len(times) >= 3:
                    break
        if len(times) < 2:
            return None
        times.sort()
        return statistics.median(b - a for a, b in zip(times, times[1:]))

    def samples(self, config: SampleConfig = SampleConfig(), start: float = 0.0) -> Iterator[Sample]:
        """Frames every ``config.interval`` seconds and at scene cuts, from ``start`` seconds on.

        The first frame at or after ``start`` is always a sample (marked as a cut), so a
        resumed run starts its first moment where the last committed one ended.
        """
        gap = self.keyframe_interval() if config.keyframes == "auto" else None
        keyframes = config.keyframes == "on" or (gap is not None and gap <= config.interval)
        self.stats.keyframes_only = keyframes
        self._stream.codec_context.skip_frame = "NONKEY" if keyframes else "NONREF"
        if config.threads:
            self._stream.codec_context.thread_count = config.threads
        self._seek(start)
        previous: Signature | None = None
        due = start
        for frame in self._frames():
            when = self._time(frame)
            if when is None or when < start - 1e-6:
                continue
            self.stats.decoded += 1
            signature = _signature(frame)
            cut = previous is None or config.scenes.is_cut(previous, signature)
            previous = signature
            if cut or when >= due - 1e-6:
                self.stats.sampled += 1
                yield Sample(when, _image(frame, config.frame_side), signature, cut)
                due = when + config.interval

    def frame_at(self, seconds: float, side: int) -> Image.Image:
        """The upright frame shown at ``seconds`` (the last one before it), shorter side at most ``side``.

        Raises:
            VideoDecodeError: nothing could be decoded there.
        """
        self._stream.codec_context.skip_frame = "DEFAULT"
        self._seek(seconds)
        shown = None
        for frame in self._frames():
            when = self._time(frame)
            if shown is not None and when is not None and when > seconds + 1e-6:
                break
            shown = frame
        if shown is None:
            raise VideoDecodeError(f"no frame could be decoded at {seconds:.1f} s")
        return _image(shown, side)

    def _seek(self, seconds: float) -> None:
        stream = self._stream
        target = int((seconds + self._base) / float(stream.time_base))
        try:
            self._container.seek(max(0, target), stream=stream, backward=True)
        except self._av.error.FFmpegError as exc:
            if seconds > 0:
                raise VideoDecodeError(f"cannot seek to {seconds:.1f} s: {exc}") from exc

    def _time(self, frame: object) -> float | None:
        when = frame.time  # type: ignore[attr-defined]
        return None if when is None else max(0.0, when - self._base)

    def _frames(self) -> Iterator[object]:
        """Decoded frames in order; damaged packets are skipped (up to a limit in a row)."""
        av, stream = self._av, self._stream
        in_a_row = 0
        for packet in self._container.demux(stream):
            try:
                frames = packet.decode()
            except (av.error.InvalidDataError, av.error.EOFError, av.error.UndefinedError) as exc:
                self.stats.bad_packets += 1
                in_a_row += 1
                if in_a_row >= _MAX_BAD_PACKETS:
                    log.warning("giving up on the rest of a video after %d damaged packets (%s)", in_a_row, exc)
                    return
                continue
            in_a_row = 0
            yield from frames


def _rotation(frame: object) -> int:
    """Counter-clockwise degrees (0, 90, 180, 270) that turn ``frame`` upright."""
    degrees = getattr(frame, "rotation", 0) or 0
    return int(round(degrees / 90.0)) % 4 * 90


def _signature(frame: object) -> Signature:
    width, height = SIGNATURE_SIZE
    small = frame.reformat(width=width, height=height, format="rgb24", interpolation="AREA")  # type: ignore[attr-defined]
    return signature_of(small.to_ndarray())


def _image(frame: object, side: int) -> Image.Image:
    """``frame`` as an upright RGB image, scaled (by FFmpeg) so its shorter side is at most ``side``."""
    width, height = frame.width, frame.height  # type: ignore[attr-defined]
    aspect = getattr(frame, "sample_aspect_ratio", None)
    display = width * float(aspect) if aspect else float(width)  # anamorphic pixels (e.g. DV) made square
    scale = min(1.0, side / min(display, height))
    size = (max(2, round(display * scale)), max(2, round(height * scale)))
    image = frame.reformat(width=size[0], height=size[1], format="rgb24", interpolation="AREA").to_image()  # type: ignore[attr-defined]
    turn = _TRANSPOSE.get(_rotation(frame))
    return image.transpose(turn) if turn is not None else image
