"""Indexing throughput: encoder forward rate vs the end-to-end ingest pipeline.

    .venv/bin/python benchmarks/bench_index.py --count 200 --work /tmp/xmr-bench-photos --out results.json

Measures, interleaved round by round so that load from other work on the machine hits
all of them alike:
  encoder   images/s of ``encoder.encode_images`` on pre-decoded, preprocessed batches
            (the same images and batch size as the pipeline);
  decode    images/s of ``decode_file`` + ``encoder.preprocess`` in one thread (diagnostic);
  pipeline  ``Library.index`` from JPEG files into a fresh library, for each worker count:
            files / ``report.seconds`` (everything counted), and the steady rate after the
            first batch (from the ``on_progress`` callback: excludes pipeline fill, scan,
            plan and the final persist).
The pipeline ratio is pipeline / encoder; the target is 0.9.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from pathlib import Path

import _common  # noqa: F401  (sets sys.path and HF_HUB_OFFLINE before the library imports)
import numpy as np
from _common import environment, environment_line, markdown_table, median, write_json

# Photographic scikit-image samples that ship with the package (no download needed).
_SOURCES = (
    "astronaut",
    "coffee",
    "chelsea",
    "rocket",
    "hubble_deep_field",
    "immunohistochemistry",
    "retina",
    "camera",
    "grass",
    "gravel",
    "brick",
    "moon",
    "cell",
    "coins",
)


def _source_images() -> list[np.ndarray]:
    import skimage.data

    images = []
    for name in _SOURCES:
        try:
            image = getattr(skimage.data, name)()
        except Exception:  # noqa: BLE001  (some samples need a download; skip them offline)
            continue
        if image.ndim == 2:
            image = np.stack([image] * 3, axis=-1)
        images.append(np.ascontiguousarray(image[..., :3]).astype(np.uint8))
    if not images:
        raise RuntimeError("no scikit-image sample photos could be loaded")
    return images


def _make_photo(sources: list[np.ndarray], index: int, size: tuple[int, int]) -> Image.Image:  # noqa: F821
    """A distinct photo-like image: random crop of a sample, resized, colour-jittered, noisy."""
    from PIL import Image

    rng = np.random.default_rng(index)
    src = sources[index % len(sources)]
    h, w = src.shape[:2]
    aspect = size[0] / size[1]
    scale = rng.uniform(0.55, 1.0)
    ch = int(min(h, w / aspect) * scale)
    cw = int(ch * aspect)
    y, x = rng.integers(0, h - ch + 1), rng.integers(0, w - cw + 1)
    crop = Image.fromarray(src[y : y + ch, x : x + cw]).resize(size, Image.Resampling.BICUBIC)
    if rng.random() < 0.5:
        crop = crop.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
    pixels = np.asarray(crop, dtype=np.float32)
    gain = rng.uniform(0.8, 1.2, size=3) * rng.uniform(0.85, 1.15)
    pixels = pixels * gain + rng.uniform(-20, 20)
    pixels += rng.normal(0.0, rng.uniform(2.0, 5.0), size=pixels.shape)  # sensor-like noise
    return Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8))


def generate_photos(folder: Path, count: int, size: tuple[int, int]) -> list[Path]:
    """Write ``count`` JPEGs (quality 90) to ``folder``; files already there are reused."""
    # One folder per (size, count): the library indexes the whole folder, so it must hold exactly these.
    photos = folder / f"photos-{size[0]}x{size[1]}-n{count}"
    photos.mkdir(parents=True, exist_ok=True)
    paths = [photos / f"photo_{i:05d}.jpg" for i in range(count)]
    missing = [i for i, p in enumerate(paths) if not p.is_file()]
    if missing:
        sources = _source_images()
        for i in missing:
            tmp = paths[i].with_suffix(".part")
            _make_photo(sources, i, size).save(tmp, "JPEG", quality=90)
            tmp.replace(paths[i])
    return paths


def decode_all(paths: list[Path], encoder) -> tuple[dict[str, float], list]:  # noqa: ANN001
    """Seconds of decoding + preprocessing every file in one thread, and the tensors."""
    from retrieval.images.decode import decode_file

    start = time.perf_counter()
    tensors = [encoder.preprocess(decode_file(p).image) for p in paths]
    return {"wall_s": time.perf_counter() - start}, tensors


def encoder_pass(encoder, batches: list) -> dict[str, float]:  # noqa: ANN001
    """Seconds of one forward pass over every batch.

    (Process CPU time is no use here: torch's OpenMP threads spin while they wait, so under
    load from other processes the encoder alone shows more CPU time than the whole pipeline.)
    """
    start = time.perf_counter()
    for batch in batches:
        encoder.encode_images(batch)
    return {"wall_s": time.perf_counter() - start}


class TimedEncoder:
    """Wraps an encoder and adds up the wall time spent inside ``encode_images``.

    Shows whether the pipeline keeps the encoder busy (busy time ~ run time) or starves it.
    """

    def __init__(self, encoder) -> None:  # noqa: ANN001
        self._encoder = encoder
        self.busy_s = 0.0

    def __getattr__(self, name: str):  # noqa: ANN204  (identity, dim, device, preprocess, encode_texts)
        return getattr(self._encoder, name)

    def encode_images(self, pixels):  # noqa: ANN001, ANN201
        start = time.perf_counter()
        try:
            return self._encoder.encode_images(pixels)
        finally:
            self.busy_s += time.perf_counter() - start


def pipeline_run(encoder, photos: Path, count: int, batch_size: int, workers: int, scratch: Path) -> dict[str, float]:  # noqa: ANN001
    """Index ``photos`` into a fresh library; rates from the report and the progress callback."""
    from retrieval.ingest.config import IngestConfig
    from retrieval.library import Library

    progress: list[tuple[int, float]] = []
    encoder = TimedEncoder(encoder)
    directory = Path(tempfile.mkdtemp(prefix=f"lib-w{workers}-", dir=scratch))
    try:
        with Library.open(directory, model=encoder) as lib:
            report = lib.index(
                [photos],
                config=IngestConfig(batch_size=batch_size, workers=workers),
                on_progress=lambda p: progress.append((p.done, p.seconds)),
            )
    finally:
        shutil.rmtree(directory, ignore_errors=True)
    if report.encoded != count or report.failed:
        raise RuntimeError(f"expected {count} images encoded, got {report.encoded} ({report.failed} failed)")
    (first_done, first_s), (last_done, last_s) = progress[0], progress[-1]
    return {
        "wall_s": report.seconds,
        "images_per_s": count / report.seconds,
        "first_batch_s": first_s,
        "encoder_busy_s": encoder.busy_s,  # wall time inside encode_images during the run
        "steady_images_per_s": (last_done - first_done) / (last_s - first_s) if last_s > first_s else float("nan"),
        "outside_run_plan_s": report.seconds - last_s,  # lock, scan, plan, persist
    }


def measure(args: argparse.Namespace, paths: list[Path], workers: list[int]) -> list[dict[str, dict[str, float]]]:
    """One warm-up round, then ``args.repeats`` interleaved rounds of every measurement."""
    import torch

    from retrieval.models.encoder import load_encoder
    from retrieval.models.specs import ModelSpec

    encoder = load_encoder(ModelSpec("ViT-B-32", "random"), "cpu")
    _, tensors = decode_all(paths, encoder)
    batches = [torch.stack(tensors[i : i + args.batch_size]) for i in range(0, len(tensors), args.batch_size)]
    scratch = Path(tempfile.mkdtemp(prefix="scratch-", dir=args.work))
    encoder_pass(encoder, batches[:2])  # warm-up: first forward passes, allocator, page cache
    pipeline_run(encoder, paths[0].parent, len(paths), args.batch_size, workers[0], scratch)
    rounds = []
    for r in range(args.repeats):
        row = {"encoder": encoder_pass(encoder, batches), "decode": decode_all(paths, encoder)[0]}
        for w in workers if r % 2 == 0 else workers[::-1]:  # alternate so no count always runs first
            row[f"pipeline_w{w}"] = pipeline_run(encoder, paths[0].parent, len(paths), args.batch_size, w, scratch)
        rounds.append(row)
        print(
            f"round {r + 1}/{args.repeats}: encoder {len(paths) / row['encoder']['wall_s']:.1f} img/s, "
            + ", ".join(f"w{w} {row[f'pipeline_w{w}']['images_per_s']:.1f} img/s" for w in workers),
            file=sys.stderr,
        )
    shutil.rmtree(scratch, ignore_errors=True)
    return rounds


def summarise(rounds: list[dict[str, dict[str, float]]], count: int, workers: list[int]) -> dict[str, object]:
    """Medians over rounds; ratios both of the medians and per round (same load) then median."""
    enc = median([count / r["encoder"]["wall_s"] for r in rounds])
    out: dict[str, object] = {
        "encoder_images_per_s": enc,
        "decode_preprocess_images_per_s_1thread": median([count / r["decode"]["wall_s"] for r in rounds]),
    }
    for w in workers:
        runs = [r[f"pipeline_w{w}"] for r in rounds]
        e2e = median([run["images_per_s"] for run in runs])
        steady = median([run["steady_images_per_s"] for run in runs])
        out[f"workers={w}"] = {
            "images_per_s": e2e,
            "ratio": e2e / enc,
            "ratio_per_round_median": median(
                [run["images_per_s"] * r["encoder"]["wall_s"] / count for run, r in zip(runs, rounds)]
            ),
            "steady_images_per_s": steady,
            "steady_ratio": steady / enc,
            "encoder_busy_fraction": median([run["encoder_busy_s"] / run["wall_s"] for run in runs]),
            "first_batch_s": median([run["first_batch_s"] for run in runs]),
            "outside_run_plan_s": median([run["outside_run_plan_s"] for run in runs]),
        }
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--count", type=int, default=200, help="number of JPEGs to index")
    parser.add_argument("--work", type=Path, default=None, help="folder for the photos (reused) and scratch libraries")
    parser.add_argument("--size", default="1024x768", help="photo size WxH")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--workers", default="1,2", help="decoder thread counts to try, comma-separated")
    parser.add_argument("--repeats", type=int, default=5, help="measured rounds (after one warm-up round)")
    parser.add_argument("--out", type=Path, default=None, help="write JSON results here")
    args = parser.parse_args(argv)
    if args.repeats < 2:
        parser.error("--repeats must be at least 2")
    size = tuple(int(v) for v in args.size.lower().split("x"))
    workers = [int(w) for w in args.workers.split(",")]
    args.work = args.work or Path(tempfile.mkdtemp(prefix="xmr-bench-index-"))
    args.work.mkdir(parents=True, exist_ok=True)
    paths = generate_photos(args.work, args.count, size)  # type: ignore[arg-type]
    mean_kib = sum(p.stat().st_size for p in paths) / len(paths) / 1024

    env = environment()  # at the start: the commit the code was loaded from
    rounds = measure(args, paths, workers)
    summary = summarise(rounds, args.count, workers)
    table = []
    for w in workers:
        s = summary[f"workers={w}"]
        table.append(
            [
                args.count,
                f"{args.size} ({mean_kib:.0f} KiB)",
                args.batch_size,
                w,
                f"{summary['encoder_images_per_s']:.1f}",
                f"{s['images_per_s']:.1f}",
                f"**{s['ratio']:.2f}** ({s['ratio_per_round_median']:.2f})",
                f"{s['steady_images_per_s']:.1f} ({s['steady_ratio']:.2f})",
                f"{s['encoder_busy_fraction']:.0%}",
            ]
        )
    print(
        markdown_table(
            [
                "photos",
                "size (mean file)",
                "batch",
                "workers",
                "encoder-only img/s",
                "end-to-end img/s",
                "pipeline ratio (per-round median)",
                "after 1st batch img/s (ratio)",
                "encoder busy, % of run",
            ],
            table,
        )
    )
    print(f"\ndecode+preprocess alone, 1 thread: {summary['decode_preprocess_images_per_s_1thread']:.1f} img/s")
    print(f"medians of {args.repeats} rounds; {environment_line(env)}")
    write_json(
        args.out,
        {
            "count": args.count,
            "size": args.size,
            "mean_file_kib": round(mean_kib, 1),
            "batch_size": args.batch_size,
            "repeats": args.repeats,
            "summary": summary,
            "rounds": rounds,
            "environment": env,
        },
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
