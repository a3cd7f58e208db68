"""Videos: decode and embed throughput, moments and bytes per hour, and finding photos in slideshows.

Two parts (each prints a table and the environment; ``--out`` writes JSON):

``speed``: a 1080p H.264 video of real photos with pans, zooms and camera-like noise, written
with PyAV (``--gop phone``: a keyframe every second, no B-frames, as phones write;
``--gop edited``: x264's defaults). It is sampled alone (decode only: frames decoded per
second), then indexed into a new library with each ``--model`` (end to end: frames
embedded per second, wall time), and the moments, catalog and index bytes are scaled to
one hour of video. ``--hour`` also writes a one-hour file (the clip's packets repeated) and
indexes that: the time to index one hour of 1080p H.264, measured.

``set``: ``--videos`` slideshows (480x270, 15 fps, half phone, half edited keyframes), each
a sequence of ``--per-video`` distinct real photos from scikit-image shown 3-8 s with pans
and zooms; every photo is then a query, and a hit is right when its top-1 is the video
the photo is in at a moment that starts while the photo is on screen. ``--framing whole``
opens each shot on the whole photo (then zooms in up to 25 % and pans); ``random`` runs
between two random framings (the harder case for random weights). Each photo is queried
twice: ``plain`` (``Library.search(video_framing=False)``) and ``framed`` (the default: a
moment also scores against the photo centre-cropped to its video's shape).

``ceiling``: the set's frames rendered straight from the photos, with no video (each shot's
first frame, or one every 2 s), the photos queried plain and framed: what the encoder can
do before decoding, sampling and moments.

    .venv/bin/python benchmarks/bench_video.py set --work /tmp/xmr-video --out /tmp/xmr-video/set.json
    .venv/bin/python benchmarks/bench_video.py ceiling --framing whole --work /tmp/xmr-video
    .venv/bin/python benchmarks/bench_video.py speed --work /tmp/xmr-video --seconds 120 --hour
"""

from __future__ import annotations

import argparse
import shutil
import sys
import time
from fractions import Fraction
from pathlib import Path

import _common  # noqa: F401  (sets sys.path and HF_HUB_OFFLINE before the library imports)
import numpy as np
from _common import environment, environment_line, markdown_table, write_json
from PIL import Image

from tests.helpers.videos import EDITED, PHONE, Shot, photo_frames, write_frames, write_slideshow

# Bundled with scikit-image (no download): large ones are cut in quarters, each a picture of its own.
QUADRANTS = (
    "retina",
    "hubble_deep_field",
    "immunohistochemistry",
    "astronaut",
    "camera",
    "coffee",
    "rocket",
    "cell",
    "moon",
    "coins",
)
WHOLE = ("cat", "clock", "colorwheel", "brick", "grass", "gravel", "text", "checkerboard", "logo", "horse", "page")
WHOLE += ("shepp_logan_phantom", "binary_blobs", "microaneurysms")


# Drawn, not photographed: ``--photos real`` puts the photos below in their place.
DRAWN = ("checkerboard", "logo", "horse", "shepp_logan_phantom", "binary_blobs", "colorwheel")
# Photos inside packages on PyPI (fetched with ``pip download --no-deps``, read from the archive,
# never installed): (package, member of its wheel or sdist). CC BY 2.0 (scikit-learn's
# README.txt beside them), matplotlib's sample data, iscc-samples' demo image.
PACKAGED = {
    "china": ("scikit-learn==1.9.1", "sklearn/datasets/images/china.jpg"),
    "flower": ("scikit-learn==1.9.1", "sklearn/datasets/images/flower.jpg"),
    "grace_hopper": ("matplotlib==3.11.2", "matplotlib/mpl-data/sample_data/grace_hopper.jpg"),
    "iscc_cat": ("iscc-samples==0.6.0", "iscc_samples/files/image/demo.jpg"),
}


def distinct_photos(photos: str = "skimage") -> dict[str, Image.Image]:
    """About 60 distinct pictures from scikit-image's bundled data: small ones whole, large ones in
    quarters; with ``photos="real"`` the drawn ones are replaced by :data:`PACKAGED` photos."""
    import skimage.data as data

    out: dict[str, Image.Image] = {}
    for name in WHOLE:
        if photos == "real" and name in DRAWN:
            continue  # binary_blobs draws new blobs on every call unless seeded
        out[name] = _rgb(data.binary_blobs(rng=0) if name == "binary_blobs" else getattr(data, name)())
    sources = {name: getattr(data, name)() for name in QUADRANTS}
    left, right = data.stereo_motorcycle()[:2]
    sources.update({"motorcycle_left": left, "motorcycle_right": right})
    for name, array in sources.items():
        h, w = np.shape(array)[:2]
        for i, (y, x) in enumerate(((0, 0), (0, w // 2), (h // 2, 0), (h // 2, w // 2))):
            out[f"{name}-{i}"] = _rgb(np.asarray(array)[y : y + h // 2, x : x + w // 2])
    if photos == "real":
        out.update({name: packaged_photo(*where) for name, where in PACKAGED.items()})
    return out


def packaged_photo(requirement: str, member: str) -> Image.Image:
    """A photo inside a package's wheel (or sdist) from PyPI, downloaded once into
    ``~/.cache/xmr-bench`` and read from the archive (nothing is installed)."""
    import io
    import subprocess
    import tarfile
    import zipfile

    folder = Path.home() / ".cache" / "xmr-bench" / requirement.replace("==", "-")
    if not folder.is_dir() or not any(folder.iterdir()):
        folder.mkdir(parents=True, exist_ok=True)
        subprocess.run(
            [sys.executable, "-m", "pip", "download", "--no-deps", "--quiet", "-d", str(folder), requirement],
            check=True,
        )
    (archive,) = [p for p in folder.iterdir() if p.suffix in (".whl", ".gz")]
    if archive.suffix == ".whl":
        with zipfile.ZipFile(archive) as wheel:
            data = wheel.read(member)
    else:
        with tarfile.open(archive) as sdist:
            (inside,) = [m for m in sdist.getnames() if m.endswith("/" + member)]
            extracted = sdist.extractfile(inside)
            assert extracted is not None
            data = extracted.read()
    return Image.open(io.BytesIO(data)).convert("RGB")


def _rgb(array: np.ndarray) -> Image.Image:
    array = np.asarray(array)
    if array.dtype == bool:
        array = array.astype(np.uint8) * 255
    elif array.dtype != np.uint8:  # float pictures (the phantom): stretched to 0..255
        low, high = float(array.min()), float(array.max())
        array = (255 * (array - low) / max(high - low, 1e-9)).astype(np.uint8)
    return Image.fromarray(array).convert("RGB")


# ---- the generated set -------------------------------------------------------------------------


def make_set(work: Path, videos: int, per_video: int, framing: str, seed: int, photos_from: str) -> list[dict]:
    photos = distinct_photos(photos_from)
    names = list(np.random.default_rng(seed).permutation(sorted(photos)))
    if len(names) < videos * per_video:
        raise SystemExit(f"only {len(names)} distinct photos for {videos} x {per_video}")
    folder = work / f"set-{framing}"
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    made = []
    rng = np.random.default_rng(seed + 1)
    for v in range(videos):
        chosen = names[v * per_video : (v + 1) * per_video]
        path = folder / f"video{v:02d}.mp4"
        seconds = rng.uniform(3.0, 8.0, len(chosen))
        gop = PHONE if v % 2 else EDITED
        shots = write_slideshow(
            path,
            [(n, photos[n]) for n in chosen],
            seconds,
            size=(480, 270),
            fps=15,
            seed=seed + v,
            from_whole=framing == "whole",
            gop=gop,
        )
        made.append({"path": str(path), "gop": gop, "shots": [[s.name, s.start, s.end] for s in shots]})
    return made


def run_set(args: argparse.Namespace) -> dict[str, object]:
    from retrieval import Library

    work = Path(args.work)
    photos = distinct_photos(args.photos)
    rows, raw = [], []
    for framing in args.framing.split(","):
        made = make_set(work, args.videos, args.per_video, framing, args.seed, args.photos)
        library = work / f"library-set-{framing}"
        shutil.rmtree(library, ignore_errors=True)
        with Library.open(library, model=args.model, pretrained=args.pretrained, device="cpu") as lib:
            start = time.perf_counter()
            report = lib.index([work / f"set-{framing}"])
            seconds = time.perf_counter() - start
            info = lib.info()
            for query in ("plain", "framed"):  # Library.search's video_framing off, then on (the default)
                video_ok = moment_ok = total = 0
                misses = []
                start = time.perf_counter()
                for item in made:
                    for name, s0, s1 in item["shots"]:
                        (hit, *_) = lib.search(image=photos[name], k=1, video_framing=query == "framed")
                        total += 1
                        right = hit.path == item["path"]
                        video_ok += right
                        moment_ok += right and hit.start is not None and s0 - 1e-6 <= hit.start < s1
                        if not right:
                            misses.append([name, Path(item["path"]).name, Path(hit.path).name])
                query_s = (time.perf_counter() - start) / max(1, total)
                rows.append(
                    [
                        framing,
                        query,
                        len(made),
                        total,
                        info.moments,
                        f"{video_ok / total:.3f}",
                        f"{moment_ok / total:.3f}",
                        f"{seconds:.1f}",
                        f"{query_s:.3f}",
                    ]
                )
                raw.append(
                    {
                        "framing": framing,
                        "query": query,
                        "videos": len(made),
                        "queries": total,
                        "moments": info.moments,
                        "top1_video": video_ok / total,
                        "top1_moment": moment_ok / total,
                        "index_seconds": seconds,
                        "query_seconds": query_s,
                        "misses": misses,
                        "report": report.to_json(),
                    }
                )
    print(
        markdown_table(
            [
                "framing",
                "image query",
                "videos",
                "queries (photos)",
                "moments",
                "top-1 video",
                "top-1 video + moment",
                "index s",
                "s per query",
            ],
            rows,
        )
    )
    return {"set": raw}


def run_ceiling(args: argparse.Namespace) -> dict[str, object]:
    """The set's frames rendered straight from the photos (no encoding, sampling or moments): each
    shot's first frame, or a frame every 2 s, one vector each; each photo queried plain and framed
    (plain plus its centre cropped to the frame's 16:9, the better cosine: what Library.search does)."""
    from retrieval import Library
    from retrieval.search.framing import frame_crop

    photos = distinct_photos(args.photos)
    names = list(np.random.default_rng(args.seed).permutation(sorted(photos)))
    size, fps = (480, 270), 15
    frames, owner, first, queries = [], [], [], []
    rng = np.random.default_rng(args.seed + 1)
    for v in range(args.videos):  # the same draws as make_set and write_slideshow
        chosen = names[v * args.per_video : (v + 1) * args.per_video]
        seconds = rng.uniform(3.0, 8.0, len(chosen))
        shot_rng = np.random.default_rng(args.seed + v)
        for name, length in zip(chosen, seconds):
            count = max(1, round(length * fps))
            shot = list(photo_frames(photos[name], size, count, shot_rng, 1.25, args.framing.split(",")[0] == "whole"))
            for i in range(0, count, 2 * fps):
                frames.append(Image.fromarray(shot[i]))
                owner.append(v)
                first.append(i == 0)
            queries.append((name, v))
    library = Path(args.work) / "library-ceiling"
    shutil.rmtree(library, ignore_errors=True)
    with Library.open(library, model=args.model, pretrained=args.pretrained, device="cpu") as lib:
        enc = lib.encoder

        def embed(images: list[Image.Image]) -> np.ndarray:
            return np.concatenate(
                [
                    enc.encode_images(enc.stack([enc.preprocess(im) for im in images[i : i + 16]]))
                    for i in range(0, len(images), 16)
                ]
            )

        vectors = embed(frames)
        plain = embed([photos[n] for n, _ in queries])
        crops = [frame_crop(photos[n], size[0] / size[1]) for n, _ in queries]
        framed = embed([c if c is not None else photos[n] for c, (n, _) in zip(crops, queries)])
    owner_a, first_a = np.asarray(owner), np.asarray(first)
    rows, raw = [], {}
    for label, mask in (("first frame of each shot", first_a), ("a frame every 2 s", np.ones_like(first_a))):
        for query, scores in (
            ("plain", plain @ vectors[mask].T),
            ("framed", np.maximum(plain @ vectors[mask].T, framed @ vectors[mask].T)),
        ):
            right = float(np.mean(owner_a[mask][scores.argmax(1)] == np.asarray([v for _, v in queries])))
            rows.append([label, query, int(mask.sum()), len(queries), f"{right:.3f}"])
            raw[f"{label} / {query}"] = right
    print(markdown_table(["vectors", "image query", "vectors", "queries", "top-1 video"], rows))
    return {"ceiling": raw}


# ---- speed -------------------------------------------------------------------------------------


def make_clip(path: Path, seconds: float, size: tuple[int, int], fps: int, gop: str, seed: int) -> list[Shot]:
    """A slideshow of real photos with pans, zooms and sensor-like noise (what makes camera bitrates)."""
    photos = distinct_photos()
    names = sorted(photos)
    rng = np.random.default_rng(seed)
    noise = rng.normal(0, 5, (8, size[1], size[0], 3)).astype(np.int16)  # a few noise fields, reused in turn
    shots: list[Shot] = []
    lengths = []
    total = 0.0
    while total < seconds:
        lengths.append(min(float(rng.uniform(3.0, 8.0)), seconds - total))
        total += lengths[-1]

    def frames():  # noqa: ANN202
        frame = 0
        for i, length in enumerate(lengths):
            count = max(1, round(length * fps))
            shots.append(Shot(names[i % len(names)], frame / fps, (frame + count) / fps))
            for rgb in photo_frames(photos[names[i % len(names)]], size, count, rng):
                yield np.clip(rgb.astype(np.int16) + noise[frame % len(noise)], 0, 255).astype(np.uint8)
                frame += 1

    write_frames(path, frames(), fps, codec="libx264", gop=gop)
    return shots


def repeat_clip(source: Path, target: Path, seconds: float) -> float:
    """``target``: ``source``'s packets repeated until ``seconds`` (no re-encoding); returns its duration."""
    import av

    with av.open(str(source)) as src:
        stream = src.streams.video[0]
        packets = [p for p in src.demux(stream) if p.dts is not None]
        step = max(p.pts for p in packets) + packets[1].duration if len(packets) > 1 else 1
        time_base = stream.time_base
        with av.open(str(target), "w") as out:
            copy = out.add_stream_from_template(stream)
            offset = 0
            while offset * time_base < seconds:
                for packet in packets:
                    packet.pts += offset
                    packet.dts += offset
                    packet.stream = copy
                    out.mux(packet)
                    packet.pts -= offset
                    packet.dts -= offset
                offset += step
    return float(offset * Fraction(time_base))


def decode_only(path: Path) -> dict[str, float]:
    from retrieval.video.config import SampleConfig
    from retrieval.video.frames import VideoReader
    from retrieval.video.moments import MomentGrouper

    config = SampleConfig()
    grouper = MomentGrouper(config.scenes)
    start = time.perf_counter()
    with VideoReader(path) as reader:
        moments = sum(grouper.add(s) is not None for s in reader.samples(config)) + len(
            list(grouper.finish(reader.info.duration))
        )
        stats, duration = reader.stats, reader.info.duration
    seconds = time.perf_counter() - start
    return {
        "seconds": seconds,
        "decoded": stats.decoded,
        "sampled": stats.sampled,
        "moments": moments,
        "duration": duration,
        "keyframes_only": stats.keyframes_only,
    }


def index_once(path: Path, library: Path, model: str, pretrained: str | None) -> dict[str, float]:
    from retrieval import Library

    shutil.rmtree(library, ignore_errors=True)
    with Library.open(library, model=model, pretrained=pretrained, device="cpu") as lib:
        empty = lib.layout.bytes_on_disk()
        lib.encoder.encode_texts(["warm up"])  # the model load is not the video's cost
        start = time.perf_counter()
        report = lib.index([path.parent])
        seconds = time.perf_counter() - start
        info = lib.info()
        grown = lib.layout.bytes_on_disk() - empty
    return {"seconds": seconds, "moments": info.moments, "encoded": report.encoded, "bytes": grown}


def run_speed(args: argparse.Namespace) -> dict[str, object]:
    work = Path(args.work)
    width, height = (int(x) for x in args.size.split("x"))
    clip_dir = work / f"clip-{args.gop}-{args.size}-{int(args.seconds)}"
    clip = clip_dir / "clip.mp4"
    if not clip.exists():
        clip_dir.mkdir(parents=True, exist_ok=True)
        t = time.perf_counter()
        make_clip(clip, args.seconds, (width, height), args.fps, args.gop, args.seed)
        print(
            f"wrote {clip} ({clip.stat().st_size / 2**20:.1f} MiB) in {time.perf_counter() - t:.0f} s", file=sys.stderr
        )
    targets = [("clip", clip)]
    if args.hour:
        hour_dir = work / f"hour-{args.gop}-{args.size}"
        hour = hour_dir / "hour.mp4"
        if not hour.exists():
            hour_dir.mkdir(parents=True, exist_ok=True)
            repeat_clip(clip, hour, 3600.0)
        targets.append(("hour", hour))
    rows, raw = [], []
    for label, path in targets:
        decoded = decode_only(path)
        per_hour = 3600.0 / decoded["duration"]
        for model in args.models.split(","):
            name, _, pretrained = model.partition("@")
            indexed = index_once(path, work / "library-speed", name, pretrained or None)
            raw.append(
                {
                    "video": label,
                    "model": model,
                    "decode": decoded,
                    "index": indexed,
                    "mib": path.stat().st_size / 2**20,
                }
            )
            rows.append(
                [
                    label,
                    model,
                    f"{decoded['duration']:.0f}",
                    f"{path.stat().st_size * 8 / decoded['duration'] / 1e6:.1f}",
                    ("keyframes" if decoded["keyframes_only"] else "non-ref skipped")
                    + f" ({decoded['decoded'] / max(1.0, decoded['duration'] * args.fps):.0%} of frames)",
                    f"{decoded['decoded'] / decoded['seconds']:.1f}",
                    f"{decoded['duration'] / decoded['seconds']:.1f}",
                    f"{indexed['encoded'] / indexed['seconds']:.2f}",
                    f"{indexed['seconds']:.1f}",
                    f"{indexed['seconds'] * per_hour / 60:.1f}",
                    f"{indexed['moments'] * per_hour:.0f}",
                    f"{indexed['bytes'] * per_hour / 2**20:.2f}",
                ]
            )
    header = [
        "video",
        "model",
        "seconds",
        "Mbit/s",
        "decode",
        "frames decoded/s",
        "video s per s (decode)",
        "frames embedded/s (end to end)",
        "index s",
        "min per hour of video",
        "moments per hour",
        "MiB per hour (catalog + index)",
    ]
    print(markdown_table(header, rows))
    return {"speed": raw}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("part", choices=("set", "ceiling", "speed"))
    parser.add_argument(
        "--work", default="/tmp/xmr-video", help="Folder for the videos and libraries (kept and reused)."
    )
    parser.add_argument("--out", default="", help="Write all figures as JSON here.")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--model", default="ViT-B-32", help="set: the model (random weights by default).")
    parser.add_argument("--pretrained", default="random")
    parser.add_argument("--videos", type=int, default=20)
    parser.add_argument("--per-video", type=int, default=3)
    parser.add_argument("--framing", default="whole,random", help="set: whole, random or both (comma-separated).")
    parser.add_argument(
        "--models", default="tiny,ViT-B-32@random", help="speed: models, NAME@PRETRAINED; 'tiny' is a tiny random CLIP."
    )
    parser.add_argument("--seconds", type=float, default=60.0, help="speed: length of the generated clip.")
    parser.add_argument("--size", default="1920x1080")
    parser.add_argument("--fps", type=int, default=30)
    parser.add_argument("--gop", choices=(PHONE, EDITED), default=PHONE)
    parser.add_argument("--hour", action="store_true", help="speed: also index one hour made of the clip repeated.")
    parser.add_argument(
        "--photos",
        choices=("skimage", "real"),
        default="skimage",
        help="skimage: its 62 pictures (6 drawn); real: the drawn ones replaced by 4 photos from PyPI packages.",
    )
    args = parser.parse_args(argv)
    Path(args.work).mkdir(parents=True, exist_ok=True)
    if "tiny" in args.models.split(","):
        from tests.helpers.tiny_model import make_tiny_model

        tiny = Path(args.work) / "tiny-model"
        if not tiny.exists():
            make_tiny_model(tiny)
        args.models = args.models.replace("tiny", f"local-dir:{tiny}")
    parts = {"set": run_set, "ceiling": run_ceiling, "speed": run_speed}
    figures = parts[args.part](args)
    env = environment(("numpy", "torch", "open_clip", "av", "PIL"))
    print(environment_line(env))
    write_json(args.out, {"environment": env, "args": vars(args), **figures})
    return 0


if __name__ == "__main__":
    sys.exit(main())
