"""Test videos made with PyAV: real photos shown a few seconds each with pans and zooms.

Each photo starts a shot (a scene cut) shown whole (scaled to cover the frame, like phone
slideshows) and then drifts: it zooms in by up to ``zoom`` and pans. The shots say when each
photo is on screen, so a test knows which moment a photo should find.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import numpy as np
from PIL import Image

__all__ = ["Shot", "codec_for", "photo_frames", "scikit_photos", "write_frames", "write_slideshow"]

PHONE = "phone"  # a keyframe every second, no B-frames, no keyframes at cuts (what phones write)
EDITED = "edited"  # x264's defaults: keyframes at scene cuts and every 250 frames, B-frames


@dataclass(frozen=True)
class Shot:
    """When one photo is on screen."""

    name: str  # the photo's name
    start: float  # seconds
    end: float  # seconds


def scikit_photos(
    names: Sequence[str] = ("astronaut", "coffee", "chelsea", "camera", "rocket", "coins"),
) -> dict[str, Image.Image]:
    """RGB photos shipped with scikit-image (no download)."""
    import skimage.data

    return {name: Image.fromarray(np.asarray(getattr(skimage.data, name)())).convert("RGB") for name in names}


def codec_for(container: str) -> str:
    """An encoder PyAV's FFmpeg has for ``container`` (H.264 where it fits and exists, else MPEG-4 Part 2)."""
    import av

    if container == "webm":
        return "libvpx-vp9"
    if container in ("avi", "3gp"):
        return "mpeg4"
    return "libx264" if "libx264" in av.codecs_available else "mpeg4"


def _cover(photo: Image.Image, size: tuple[int, int]) -> Image.Image:
    scale = max(size[0] / photo.width, size[1] / photo.height)
    return photo.resize(
        (max(size[0], round(photo.width * scale)), max(size[1], round(photo.height * scale))), Image.BILINEAR
    )


def photo_frames(
    photo: Image.Image,
    size: tuple[int, int],
    count: int,
    rng: np.random.Generator,
    zoom: float = 1.25,
    from_whole: bool = True,
) -> Iterator[np.ndarray]:
    """``count`` RGB frames ``(h, w, 3)`` panning and zooming over ``photo`` (scaled to cover the frame).

    ``from_whole``: the shot opens on the whole photo and zooms in to at most ``zoom``; else it
    runs between two random framings (zoom 1 to ``zoom``, in or out, anywhere in the photo).
    """
    width, height = size
    base = _cover(photo, (width * 2, height * 2))  # drawn from twice the size: zooms stay sharp
    start_zoom, start_pan = (1.0, np.full(2, 0.5)) if from_whole else (rng.uniform(1.0, zoom), rng.random(2))
    end_zoom = rng.uniform(1.0, zoom)
    end_pan = rng.random(2)
    for i in range(count):
        f = i / max(1, count - 1)
        z = start_zoom + (end_zoom - start_zoom) * f
        cw, ch = width * 2 / z, height * 2 / z
        px, py = start_pan + (end_pan - start_pan) * f
        x, y = px * (base.width - cw), py * (base.height - ch)
        yield np.asarray(base.resize(size, Image.BILINEAR, box=(x, y, x + cw, y + ch)))


def write_frames(
    path: Path,
    frames: Iterator[np.ndarray],
    fps: int,
    codec: str = "",
    gop: str = PHONE,
    rotation: int = 0,
    metadata: dict[str, str] | None = None,
) -> int:
    """Encode RGB ``frames`` into ``path`` (container from its extension); returns the frame count."""
    import av

    codec = codec or codec_for(path.suffix.lstrip(".").lower())
    count = 0
    with av.open(str(path), "w") as out:
        out.metadata.update(metadata or {})
        stream = None
        for rgb in frames:
            if stream is None:
                stream = out.add_stream(codec, rate=fps)
                stream.height, stream.width = rgb.shape[:2]
                stream.pix_fmt = "yuv420p"
                if codec == "libx264":
                    params = f"keyint={fps}:min-keyint={fps}:scenecut=0:bframes=0" if gop == PHONE else ""
                    stream.options = {"preset": "veryfast", "crf": "26", **({"x264-params": params} if params else {})}
                elif gop == PHONE:
                    stream.codec_context.gop_size = fps
                if rotation:
                    stream.set_display_rotation(rotation)
            frame = av.VideoFrame.from_ndarray(rgb, format="rgb24")
            frame.pts, frame.time_base = count, Fraction(1, fps)
            out.mux(stream.encode(frame))
            count += 1
        if stream is not None:
            out.mux(stream.encode(None))
    return count


def write_slideshow(
    path: Path,
    photos: Sequence[tuple[str, Image.Image]],
    seconds: Sequence[float],
    size: tuple[int, int] = (96, 64),
    fps: int = 10,
    seed: int = 0,
    zoom: float = 1.25,
    from_whole: bool = True,
    **encoding: object,
) -> list[Shot]:
    """A video showing each photo for its ``seconds``, with pans and zooms; returns the shots."""
    rng = np.random.default_rng(seed)
    shots: list[Shot] = []
    frame = 0

    def frames() -> Iterator[np.ndarray]:
        nonlocal frame
        for (name, photo), length in zip(photos, seconds):
            count = max(1, round(length * fps))
            shots.append(Shot(name, frame / fps, (frame + count) / fps))
            frame += count
            yield from photo_frames(photo, size, count, rng, zoom, from_whole)

    write_frames(path, frames(), fps, **encoding)  # type: ignore[arg-type]
    return shots
