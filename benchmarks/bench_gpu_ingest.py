"""GPU ingest throughput: end-to-end ``Library.index`` from JPEG files against the encoder's own rate.

    python benchmarks/bench_gpu_ingest.py --count 20000 --work /tmp/gpu-bench --out gpu_ingest.json

Generates ``--count`` varied 1024x768 JPEGs (cropped, resized, colour-shifted, noisy
scikit-image samples; 10% carry EXIF orientation 6) with one process per core, then
measures on ViT-B-32 with random weights, batch ``--batch-size``:
  encoder      images/s of ``encoder.encode_images`` on preprocessed batches already on the device;
  stages       read+hash+header parse alone (reader threads; header processes), nvJPEG batch decode alone,
               decode+orient+resize+normalise alone, and reading+decoding overlapped
               (``iter_batches``) without the encoder: where the time goes;
  end-to-end   ``Library.index`` into a fresh library with GPU decode (files / report.seconds,
               nothing subtracted; default IngestConfig: header processes auto, commit_ahead),
               again with header_processes=0 and with commit_ahead=False, and with the CPU
               decode path on ``--cpu-count`` of the files.
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import shutil
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import _common  # noqa: F401  (sys.path, HF_HUB_OFFLINE)
import numpy as np
from _common import environment, environment_line, markdown_table, median, write_json
from bench_index import TimedEncoder, _source_images

_SOURCES: list[np.ndarray] = []
_NOISE: np.ndarray | None = None


def _init_worker() -> None:
    global _SOURCES, _NOISE
    _SOURCES = _source_images()
    _NOISE = np.random.default_rng(os.getpid()).integers(-12, 13, size=(1024, 1536, 3), dtype=np.int16)


def _make(job: tuple[int, str, int, int]) -> None:
    """Write one varied JPEG (cheap: a crop, one resize, integer noise from a shared tile)."""
    from PIL import Image

    index, path, width, height = job
    rng = np.random.default_rng(index)
    src = _SOURCES[index % len(_SOURCES)]
    h, w = src.shape[:2]
    ch = int(min(h, w * height / width) * rng.uniform(0.4, 1.0))
    cw = int(ch * width / height)
    y, x = rng.integers(0, h - ch + 1), rng.integers(0, w - cw + 1)
    image = Image.fromarray(src[y : y + ch, x : x + cw]).resize((width, height), Image.Resampling.BILINEAR)
    pixels = np.asarray(image, dtype=np.int16)
    if rng.random() < 0.5:
        pixels = pixels[:, ::-1]
    gain = (rng.uniform(0.75, 1.25, size=3) * 256).astype(np.int16)
    ny, nx = rng.integers(0, _NOISE.shape[0] - height + 1), rng.integers(0, _NOISE.shape[1] - width + 1)
    pixels = (pixels * gain >> 8) + int(rng.integers(-25, 26)) + _NOISE[ny : ny + height, nx : nx + width]
    out = Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8))
    kwargs = {}
    if index % 10 == 3:  # a phone photo held upright: stored landscape, EXIF says rotate
        exif = Image.Exif()
        exif[0x0112] = 6
        kwargs["exif"] = exif
    tmp = path + ".part"
    out.save(tmp, "JPEG", quality=90, **kwargs)
    os.replace(tmp, path)


def generate(folder: Path, count: int, size: tuple[int, int]) -> list[Path]:
    """``count`` JPEGs in ``folder`` (reused when already there), made by one process per core."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = [folder / f"img_{i:06d}.jpg" for i in range(count)]
    jobs = [(i, str(p), *size) for i, p in enumerate(paths) if not p.is_file()]
    if jobs:
        with multiprocessing.get_context("fork").Pool(os.cpu_count(), initializer=_init_worker) as pool:
            for _ in pool.imap_unordered(_make, jobs, chunksize=64):
                pass
    return paths


def subset(paths: list[Path], folder: Path, count: int) -> Path:
    """A folder of hard links to the first ``count`` files (same bytes, its own library)."""
    folder.mkdir(parents=True, exist_ok=True)
    for p in paths[:count]:
        link = folder / p.name
        if not link.exists():
            os.link(p, link)
    return folder


def _sync() -> None:
    import torch

    if torch.cuda.is_available():
        torch.cuda.synchronize()


def stage_rates(encoder, paths: list[Path], batch: int, workers: int, sample: int) -> tuple[dict[str, float], list]:  # noqa: ANN001
    """Images/s of each ingest stage alone, and preprocessed batches for the encoder figure."""
    from retrieval.images.decode import DecodeConfig
    from retrieval.images.gpu_decode import (
        Preprocessor,
        each,
        iter_batches,
        pixel_spec,
        probe_file,
    )

    config = DecodeConfig()
    probe = lambda key, path: probe_file(key, path, config, encoder.preprocess)  # noqa: E731
    out: dict[str, float] = {}
    for threads in sorted({1, 4, 8, workers}):  # reader threads share the GIL: does adding them pay?
        files = paths[: sample if threads > 1 else sample // 8]
        start = time.perf_counter()
        with ThreadPoolExecutor(threads) as pool:
            probes = list(pool.map(lambda p: probe(p, str(p)), files))
        out[f"read_hash_header_{threads}threads_per_s"] = len(files) / (time.perf_counter() - start)
    out.update(_header_process_rates(paths[:sample], config, workers))
    prep = Preprocessor(pixel_spec(encoder.transform), encoder.device, config, encoder.preprocess)
    chunks = [probes[i : i + batch] for i in range(0, len(probes), batch)]
    from torchvision.io import ImageReadMode, decode_jpeg

    jpegs = [[p.jpeg for p in c if p.jpeg is not None] for c in chunks]
    decode_jpeg(jpegs[0], mode=ImageReadMode.RGB, device=encoder.device)  # warm-up (nvJPEG handles)
    _sync()
    start = time.perf_counter()
    for j in jpegs:
        decode_jpeg(j, mode=ImageReadMode.RGB, device=encoder.device)
    _sync()
    out["nvjpeg_decode_per_s"] = sum(map(len, jpegs)) / (time.perf_counter() - start)
    prep(chunks[0])
    _sync()
    start = time.perf_counter()
    batches = [prep(c)[1] for c in chunks]
    _sync()
    out["decode_preprocess_per_s"] = sample / (time.perf_counter() - start)
    start = time.perf_counter()
    done = sum(len(b[0]) for b in iter_batches([(p, str(p)) for p in paths], each(probe), prep, batch, workers, 3))
    out["read_decode_overlapped_per_s"] = done / (time.perf_counter() - start)
    return out, batches


def _header_process_rates(paths: list[Path], config, workers: int) -> dict[str, float]:  # noqa: ANN001
    """The reader stage with hashing and header parsing in worker processes (retrieval/images/headers.py)."""
    from retrieval.images.gpu_decode import probe_header
    from retrieval.images.headers import HeaderReaders
    from retrieval.ingest.config import IngestConfig

    processes = max(1, IngestConfig().header_process_count(10**6))
    files = [str(p) for p in paths]
    with HeaderReaders(processes, config) as readers, ThreadPoolExecutor(max(workers, processes)) as pool:
        readers.read(files[:1])  # started before the clock, as they are once per index run

        def probe(chunk: list[str]) -> list:
            return [probe_header(f, f, h, config, None) for f, h in zip(chunk, readers.read(chunk))]

        cpu, start = time.process_time(), time.perf_counter()
        done = sum(len(x) for x in pool.map(probe, [files[i : i + 16] for i in range(0, len(files), 16)]))
        wall, cpu = time.perf_counter() - start, time.process_time() - cpu
    return {
        f"read_hash_header_{processes}header_processes_per_s": done / wall,
        "main_process_cpu_us_per_file_with_header_processes": cpu / done * 1e6,
    }


def agreement(encoder, paths: list[Path], batch: list) -> dict[str, float]:  # noqa: ANN001
    """GPU-preprocessed pixels and vectors against the CPU preprocess of the same files."""
    import torch

    from retrieval.images.decode import decode_file

    cpu = torch.stack([encoder.preprocess(decode_file(p).image) for p in paths[: len(batch)]])
    gpu = batch[: len(cpu)].float().cpu()
    cos = np.sum(encoder.encode_images(gpu) * encoder.encode_images(cpu), axis=1)
    return {
        "files": len(cpu),
        "pixel_mean_abs_diff": float((gpu - cpu).abs().mean()),
        "pixel_max_abs_diff": float((gpu - cpu).abs().max()),
        "cosine_min": float(cos.min()),
        "cosine_mean": float(cos.mean()),
    }


def encoder_rate(encoder, batches: list, repeats: int) -> list[float]:  # noqa: ANN001
    """Images/s of ``encode_images`` over device-resident batches (its result copied to the host)."""
    encoder.encode_images(batches[0])
    rates = []
    for _ in range(repeats):
        start = time.perf_counter()
        n = sum(len(encoder.encode_images(b)) for b in batches)
        rates.append(n / (time.perf_counter() - start))
    return rates


def index_run(encoder, folder: Path, count: int, scratch: Path, **config: object) -> dict[str, float]:  # noqa: ANN001
    """Index ``folder`` into a fresh library; images/s from the report, encoder busy share."""
    from retrieval.ingest.config import IngestConfig
    from retrieval.library import Library

    timed = TimedEncoder(encoder)
    directory = Path(tempfile.mkdtemp(prefix="lib-", dir=scratch))
    try:
        with Library.open(directory, model=timed) as lib:
            report = lib.index([folder], config=IngestConfig(**config))  # type: ignore[arg-type]
    finally:
        shutil.rmtree(directory, ignore_errors=True)
    if report.encoded != count or report.failed:
        raise RuntimeError(
            f"expected {count} encoded, got {report.encoded} ({report.failed} failed: {report.failures[:3]})"
        )
    return {
        "seconds": report.seconds,
        "images_per_s": count / report.seconds,
        "encoder_busy": timed.busy_s / report.seconds,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--count", type=int, default=20000)
    parser.add_argument("--cpu-count", type=int, default=4000, help="files for the CPU-decode comparison")
    parser.add_argument("--size", default="1024x768")
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--workers", type=int, default=0, help="reader threads (0: one per core, at most 16)")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--sample", type=int, default=4096, help="files for the stage measurements")
    parser.add_argument("--device", default="cuda", help="cuda (the benchmark); cpu only to smoke-test the script")
    parser.add_argument("--compile", action="store_true", help="also measure with torch.compile")
    parser.add_argument("--work", type=Path, default=None)
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args(argv)
    size = tuple(int(v) for v in args.size.lower().split("x"))
    workers = args.workers or min(16, os.cpu_count() or 1)
    work = args.work or Path(tempfile.mkdtemp(prefix="xmr-gpu-ingest-"))
    start = time.perf_counter()
    paths = generate(work / f"photos-{args.size}-n{args.count}", args.count, size)  # before CUDA starts: fork-safe
    gen_s = time.perf_counter() - start
    mean_kib = sum(p.stat().st_size for p in paths) / len(paths) / 1024
    print(f"{len(paths)} JPEGs ({mean_kib:.0f} KiB mean) ready in {gen_s:.0f} s", file=sys.stderr, flush=True)

    import torch

    from retrieval.models.encoder import load_encoder
    from retrieval.models.specs import ModelSpec

    env = environment()
    env["gpu"] = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "none"
    encoder = load_encoder(ModelSpec("ViT-B-32", "random"), args.device)
    scratch = work / "scratch"
    scratch.mkdir(exist_ok=True)
    stages, batches = stage_rates(encoder, paths, args.batch_size, workers, min(args.sample, len(paths)))
    print(f"stages: {stages}", file=sys.stderr, flush=True)
    agree = agreement(encoder, paths, batches[0])
    print(f"GPU vs CPU preprocess: {agree}", file=sys.stderr, flush=True)
    enc = encoder_rate(encoder, batches, args.repeats)
    print(f"encoder: {enc}", file=sys.stderr, flush=True)
    gpu_cfg = {"batch_size": args.batch_size, "workers": workers, "gpu_decode": "on"}
    warm = min(1024, len(paths))
    index_run(encoder, subset(paths, work / f"warm-{warm}", warm), warm, scratch, **gpu_cfg)  # warm-up
    gpu_runs = [index_run(encoder, paths[0].parent, len(paths), scratch, **gpu_cfg) for _ in range(args.repeats)]
    print(f"gpu decode runs: {gpu_runs}", file=sys.stderr, flush=True)
    fewer = max(1, workers // 2)
    gpu_half = index_run(encoder, paths[0].parent, len(paths), scratch, **{**gpu_cfg, "workers": fewer})
    print(f"gpu decode, {fewer} readers: {gpu_half}", file=sys.stderr, flush=True)
    # What each CPU-side change buys: header work back in reader threads; commits back in line.
    threads_only = index_run(encoder, paths[0].parent, len(paths), scratch, **{**gpu_cfg, "header_processes": 0})
    in_line = index_run(encoder, paths[0].parent, len(paths), scratch, **{**gpu_cfg, "commit_ahead": False})
    print(f"gpu decode, header_processes=0: {threads_only}; commit_ahead=False: {in_line}", file=sys.stderr, flush=True)
    cpu_folder = subset(paths, work / f"cpu-{args.cpu_count}", args.cpu_count)
    cpu_cfg = {"batch_size": args.batch_size, "workers": workers, "gpu_decode": "off"}
    cpu_runs = [index_run(encoder, cpu_folder, args.cpu_count, scratch, **cpu_cfg) for _ in range(2)]
    print(f"cpu decode runs: {cpu_runs}", file=sys.stderr, flush=True)
    result: dict[str, object] = {
        "count": len(paths),
        "size": args.size,
        "mean_file_kib": round(mean_kib, 1),
        "batch_size": args.batch_size,
        "workers": workers,
        "generate_s": gen_s,
        "stages": stages,
        "encoder_per_s": enc,
        "gpu_decode_runs": gpu_runs,
        f"gpu_decode_{fewer}_readers": gpu_half,
        "gpu_decode_header_processes_0": threads_only,
        "gpu_decode_commit_ahead_off": in_line,
        "cpu_decode_runs": cpu_runs,
        "agreement": agree,
        "environment": env,
    }
    write_json(args.out, result)  # again below with the compiled figures, if it gets that far
    if args.compile:
        encoder.compile()
        start = time.perf_counter()
        encoder.encode_images(batches[0])
        result["compile_s"] = time.perf_counter() - start
        result["encoder_compiled_per_s"] = encoder_rate(encoder, batches, args.repeats)
        result["gpu_decode_compiled_runs"] = [index_run(encoder, paths[0].parent, len(paths), scratch, **gpu_cfg)]
        print(
            f"compiled: {result['encoder_compiled_per_s']} {result['gpu_decode_compiled_runs']}",
            file=sys.stderr,
            flush=True,
        )
    write_json(args.out, result)
    e = median(enc)
    g = median([r["images_per_s"] for r in gpu_runs])
    c = median([r["images_per_s"] for r in cpu_runs])
    rows = [
        ["encoder only (batches on the GPU)", f"{e:,.0f}", "1.00", ""],
        [
            f"end-to-end, GPU decode ({len(paths)} files)",
            f"{g:,.0f}",
            f"{g / e:.2f}",
            f"{median([r['encoder_busy'] for r in gpu_runs]):.0%}",
        ],
        [
            f"end-to-end, GPU decode, {fewer} reader threads",
            f"{gpu_half['images_per_s']:,.0f}",
            f"{gpu_half['images_per_s'] / e:.2f}",
            f"{gpu_half['encoder_busy']:.0%}",
        ],
        [
            "end-to-end, GPU decode, header_processes=0 (reader threads hash and parse)",
            f"{threads_only['images_per_s']:,.0f}",
            f"{threads_only['images_per_s'] / e:.2f}",
            f"{threads_only['encoder_busy']:.0%}",
        ],
        [
            "end-to-end, GPU decode, commit_ahead=False",
            f"{in_line['images_per_s']:,.0f}",
            f"{in_line['images_per_s'] / e:.2f}",
            f"{in_line['encoder_busy']:.0%}",
        ],
        [
            f"end-to-end, CPU decode ({args.cpu_count} files, {workers} threads)",
            f"{c:,.0f}",
            f"{c / e:.2f}",
            f"{median([r['encoder_busy'] for r in cpu_runs]):.0%}",
        ],
    ]
    rows += [
        [f"stage alone: {k.removesuffix('_per_s').replace('_', ' ')}", f"{v:,.0f}", "", ""]
        for k, v in stages.items()
        if k.endswith("_per_s")
    ]
    rows += [
        [f"{k.replace('_', ' ')} (microseconds, not images/s)", f"{v:,.0f}", "", ""]
        for k, v in stages.items()
        if not k.endswith("_per_s")
    ]
    if args.compile:
        rows.append(["encoder only, torch.compile", f"{median(result['encoder_compiled_per_s']):,.0f}", "", ""])
        rows.append(
            [
                "end-to-end, GPU decode, torch.compile",
                f"{result['gpu_decode_compiled_runs'][0]['images_per_s']:,.0f}",
                "",
                "",
            ]
        )
    print(markdown_table(["measurement", "images/s", "vs encoder", "encoder busy"], rows))
    print(f"\n{env['gpu']}; medians of {args.repeats} runs; {environment_line(env)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
