"""The CPU-side stages of ingest, before and after, in one run: readers, catalog commits, Library.index.

    python benchmarks/bench_ingest_stages.py --baseline eec033a --count 2000 --work /tmp/xmr-cpu-ingest --out stages.json
    python benchmarks/bench_ingest_stages.py --baseline-tree shared/xmr-eec033a --device cuda --count 20000 \
        --index-count 20000 --sample 4096 --work /tmp/gpu-bench --out gpu_stages.json   # a GPU machine (no .git there:
        # export the baseline first with  git archive eec033a | tar -x -C shared/xmr-eec033a)

The ``--baseline`` commit is exported (git archive) into a folder under ``--work``; every
measurement runs in a fresh subprocess with one tree or the other first on ``sys.path``,
round by round, so load from other work on the machine hits both alike. Files are the
generated 1024x768 JPEGs of bench_gpu_ingest.py (made once, reused). Stages:
  reader    read + blake2b + JPEG header/EXIF of ``--sample`` files, the GPU path's reader
            stage: files/s and main-process CPU per file (the GIL-bound part) with reader
            threads (both trees) and with header processes (this tree);
  commit    ``Catalog.apply`` of 256-row batches of new images (512-d vectors), then the same
            paths re-embedded: rows/s and main-process CPU per row;
  pipeline  ``commit_reads`` over ready reads with an encoder that sleeps as long as ViT-B-32
            takes on an H100 (256 / 18,864 s per batch; sleeping releases the GIL as CUDA
            waits do): files/s, this tree with and without ``commit_ahead``;
  index     ``Library.index`` of ``--index-count`` files into a fresh library (files /
            report.seconds): on ``--device cpu`` a tiny open_clip model (32 px, so decoding
            dominates) with the CPU and the GPU-path decoders; on cuda ViT-B-32 (random).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import _common  # noqa: F401  (sys.path, HF_HUB_OFFLINE)
from _common import REPO_ROOT, environment, environment_line, markdown_table, median, write_json

BATCH = 256
H100_VIT_B32_PER_S = 18_864  # encoder-only rate measured on the H100 (benchmarks/README.md)


# ---- measurements (run in a subprocess, with the tree under test first on sys.path) ----------


def _files(p: dict) -> list[Path]:
    return sorted(Path(p["folder"]).glob("*.jpg"))[: p["sample"]]


def stage_reader(p: dict) -> dict[str, float]:
    from concurrent.futures import ThreadPoolExecutor

    from retrieval.images.decode import DecodeConfig
    from retrieval.images.gpu_decode import probe_file

    files, config, workers = [str(f) for f in _files(p)], DecodeConfig(), p["workers"]
    for f in files:  # page cache: measure the CPU work, not the disk
        Path(f).read_bytes()
    cpu, start = time.process_time(), time.perf_counter()
    with ThreadPoolExecutor(workers) as pool:
        if p["variant"] == "threads":
            probes = list(pool.map(lambda f: probe_file(f, f, config, None), files))
        else:
            probes = _with_header_processes(pool, files, config, p["processes"])
    wall, cpu = time.perf_counter() - start, time.process_time() - cpu
    assert all(x.jpeg is not None for x in probes), "expected baseline JPEGs only"
    return {"files_per_s": len(files) / wall, "main_cpu_us_per_file": cpu / len(files) * 1e6}


def _with_header_processes(pool, files: list[str], config, processes: int) -> list:  # noqa: ANN001
    from retrieval.images.gpu_decode import probe_header
    from retrieval.images.headers import HeaderReaders

    readers = HeaderReaders(processes, config)
    try:

        def probe(chunk: list[str]) -> list:
            headers = readers.read(chunk)
            return [probe_header(f, f, h, config, None) for f, h in zip(chunk, headers)]

        chunks = [files[i : i + 16] for i in range(0, len(files), 16)]
        return [x for done in pool.map(probe, chunks) for x in done]
    finally:
        readers.close()


def _embedded(n: int, dim: int, seed: int) -> list:
    import numpy as np

    from index.records import Embedded, FileStat, ImageMeta

    rng = np.random.default_rng(seed)
    vectors = rng.standard_normal((n, dim)).astype("<f4")
    meta = ImageMeta(1024, 768, "JPEG")
    return [
        Embedded(
            FileStat(f"/photos/img_{i:06d}.jpg", 250_000, 10**18 + seed),
            f"{seed:08x}{i:024x}",
            meta,
            vectors[i].tobytes(),
        )
        for i in range(n)
    ]


def stage_commit(p: dict) -> dict[str, float]:
    from index.catalog import Catalog, sqlite_url

    out: dict[str, float] = {}
    with tempfile.TemporaryDirectory(dir=p["scratch"]) as tmp:
        catalog = Catalog(sqlite_url(f"{tmp}/catalog.sqlite"))
        for name, seed in (("insert", 1), ("update", 2)):
            rows = _embedded(p["sample"], 512, seed)
            cpu, start = time.process_time(), time.perf_counter()
            for i in range(0, len(rows), BATCH):
                catalog.apply(embedded=rows[i : i + BATCH])
            wall, cpu = time.perf_counter() - start, time.process_time() - cpu
            out[f"{name}_rows_per_s"] = len(rows) / wall
            out[f"{name}_ms_per_batch"] = wall / (len(rows) / BATCH) * 1e3
            out[f"{name}_main_cpu_us_per_row"] = cpu / len(rows) * 1e6
        catalog.close()
    return out


class SleepEncoder:
    """Takes as long as ViT-B-32 on an H100 and returns random unit vectors (512-d)."""

    device = "cpu"

    def __init__(self, rate: float) -> None:
        self.rate = rate

    def encode_images(self, pixels):  # noqa: ANN001, ANN201
        import numpy as np

        time.sleep(len(pixels) / self.rate)  # releases the GIL, as waiting on CUDA does
        x = np.random.default_rng(len(pixels)).standard_normal((len(pixels), 512)).astype(np.float32)
        return x / np.linalg.norm(x, axis=1, keepdims=True)


def stage_pipeline(p: dict) -> dict[str, float]:
    import dataclasses

    import torch

    from index.catalog import Catalog, sqlite_url
    from retrieval.ingest.commit import Read, commit_reads
    from retrieval.ingest.config import IngestConfig
    from retrieval.ingest.scan import Plan

    rows = _embedded(p["sample"], 512, 3)
    pixels = torch.zeros(3, 1, 1)
    reads = [Read(r.stat, r.content_hash, pixels, r.meta) for r in rows]
    known = {f.name for f in dataclasses.fields(IngestConfig)}
    config = IngestConfig(batch_size=BATCH, **{k: v for k, v in p.get("config", {}).items() if k in known})
    with tempfile.TemporaryDirectory(dir=p["scratch"]) as tmp:
        catalog = Catalog(sqlite_url(f"{tmp}/catalog.sqlite"))
        cpu, start = time.process_time(), time.perf_counter()
        commit_reads(reads, Plan(todo=[r.stat for r in reads]), SleepEncoder(H100_VIT_B32_PER_S), catalog, config)  # type: ignore[arg-type]
        wall, cpu = time.perf_counter() - start, time.process_time() - cpu
        catalog.close()
    return {
        "files_per_s": len(reads) / wall,
        "main_cpu_us_per_file": cpu / len(reads) * 1e6,
        "encoder_only_per_s": H100_VIT_B32_PER_S,
    }


def stage_index(p: dict) -> dict[str, float]:
    import dataclasses
    import shutil

    import torch
    from bench_index import TimedEncoder

    from retrieval.ingest.config import IngestConfig
    from retrieval.library import Library
    from retrieval.models.encoder import load_encoder
    from retrieval.models.specs import ModelSpec

    torch.set_num_threads(1)
    encoder = TimedEncoder(load_encoder(ModelSpec(p["model"], p.get("pretrained")), p["device"]))
    known = {f.name for f in dataclasses.fields(IngestConfig)}
    config = IngestConfig(**{k: v for k, v in p["config"].items() if k in known})
    directory = Path(tempfile.mkdtemp(prefix="lib-", dir=p["scratch"]))
    try:
        with Library.open(directory, model=encoder) as lib:
            report = lib.index([p["folder"]], config=config)
    finally:
        shutil.rmtree(directory, ignore_errors=True)
    if report.encoded != p["count"] or report.failed:
        raise RuntimeError(f"expected {p['count']} encoded, got {report.encoded} ({report.failed} failed)")
    return {
        "images_per_s": p["count"] / report.seconds,
        "seconds": report.seconds,
        "encoder_busy": encoder.busy_s / report.seconds,
    }


STAGES = {"reader": stage_reader, "commit": stage_commit, "pipeline": stage_pipeline, "index": stage_index}


def _child(tree: str, stage: str, params: str) -> int:
    sys.path.insert(0, tree)  # the tree under test before this checkout (which _common put on the path)
    import torch

    torch.set_num_threads(1)
    print(json.dumps(STAGES[stage](json.loads(params))))
    return 0


# ---- driver -------------------------------------------------------------------------------------


def _export(work: Path, commit: str) -> Path:
    """The files of ``commit`` in a folder under ``work`` (git archive: the repository is left as it is)."""
    tree = work / f"tree-{commit}"
    if not (tree / "retrieval").is_dir():
        tree.mkdir(parents=True, exist_ok=True)
        archive = subprocess.run(
            ["git", "-C", str(REPO_ROOT), "archive", commit], check=True, capture_output=True
        ).stdout
        subprocess.run(["tar", "-x", "-C", str(tree)], input=archive, check=True)
    return tree


def _run(tree: Path, stage: str, params: dict) -> dict[str, float]:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": ""}
    cmd = [sys.executable, str(Path(__file__).resolve()), "--child", str(tree), stage, json.dumps(params)]
    done = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=tree)
    if done.returncode != 0:
        raise RuntimeError(f"{stage} in {tree} failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def _plan(
    args: argparse.Namespace, photos: Path, index_folder: Path, scratch: Path, model: dict
) -> list[tuple[str, str, str, dict]]:
    """(label, tree, stage, params) of every measurement in one round."""
    common = {"folder": str(photos), "sample": args.sample, "scratch": str(scratch), "workers": args.workers}
    processes = args.header_processes if args.header_processes > 0 else max(1, min(8, (os.cpu_count() or 2) - 2))
    index = {**common, **model, "folder": str(index_folder), "count": args.index_count, "device": args.device}
    decoders = ["on"] if args.device == "cuda" else ["off", "on"]
    runs = [
        ("reader: threads", "base", "reader", {**common, "variant": "threads"}),
        ("reader: threads", "new", "reader", {**common, "variant": "threads"}),
        (
            f"reader: {processes} header processes",
            "new",
            "reader",
            {**common, "variant": "processes", "processes": processes},
        ),
        ("commit: Catalog.apply", "base", "commit", common),
        ("commit: Catalog.apply", "new", "commit", common),
        ("pipeline: commit_reads, sleeping encoder", "base", "pipeline", common),
        (
            "pipeline: commit_reads, sleeping encoder, commit_ahead off",
            "new",
            "pipeline",
            {**common, "config": {"commit_ahead": False}},
        ),
        ("pipeline: commit_reads, sleeping encoder", "new", "pipeline", common),
    ]
    for decode in decoders:
        config = {"batch_size": args.batch_size, "workers": args.workers, "gpu_decode": decode}
        runs.append((f"index: gpu_decode={decode}", "base", "index", {**index, "config": config}))
        runs.append(
            (f"index: gpu_decode={decode}", "new", "index", {**index, "config": {**config, "header_processes": 0}})
        )
        if decode == "on" and args.header_processes != 0:
            runs.append(
                (
                    f"index: gpu_decode=on, {processes} header processes",
                    "new",
                    "index",
                    {**index, "config": {**config, "header_processes": processes}},
                )
            )
    return runs


def main(argv: list[str] | None = None) -> int:
    if argv is None and len(sys.argv) > 1 and sys.argv[1] == "--child":
        return _child(*sys.argv[2:5])
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--baseline", default="", help="commit to compare with (exported with git archive)")
    parser.add_argument(
        "--baseline-tree",
        type=Path,
        default=None,
        help="an exported baseline tree (where there is no .git, e.g. a device machine)",
    )
    parser.add_argument("--count", type=int, default=2000, help="generated JPEGs (1024x768)")
    parser.add_argument(
        "--sample", type=int, default=2048, help="files / rows for the reader, commit and pipeline stages"
    )
    parser.add_argument("--index-count", type=int, default=1000, help="files for the Library.index runs")
    parser.add_argument("--batch-size", type=int, default=BATCH)
    parser.add_argument("--workers", type=int, default=0, help="reader threads (0: one per core, at most 8)")
    parser.add_argument(
        "--header-processes",
        type=int,
        default=-1,
        help="-1: cores - 2 (1 to 8, as auto picks on >= 4 cores); 0: skip those runs",
    )
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    parser.add_argument("--work", type=Path, default=Path(tempfile.gettempdir()) / "xmr-ingest-stages")
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args(argv)
    args.workers = args.workers or min(8, os.cpu_count() or 1)
    from bench_gpu_ingest import generate, subset

    photos = generate(args.work / f"photos-1024x768-n{args.count}", args.count, (1024, 768))[0].parent
    index_folder = subset(sorted(photos.glob("*.jpg")), args.work / f"subset-{args.index_count}", args.index_count)
    scratch = args.work / "scratch"
    scratch.mkdir(exist_ok=True)
    if args.device == "cuda":
        model = {"model": "ViT-B-32", "pretrained": "random"}
    else:
        sys.path.insert(0, str(REPO_ROOT))
        from tests.tiny_model import make_tiny_model

        folder = args.work / "tiny-model"
        if not (folder / "open_clip_config.json").exists():
            make_tiny_model(folder)
        model = {"model": f"local-dir:{folder}"}
    if not args.baseline and args.baseline_tree is None:
        parser.error("give --baseline COMMIT or --baseline-tree DIR")
    trees = {
        "base": args.baseline_tree.resolve() if args.baseline_tree else _export(args.work, args.baseline),
        "new": REPO_ROOT,
    }
    runs = _plan(args, photos, index_folder, scratch, model)
    results: dict[tuple[str, str], list[dict]] = {}
    for r in range(args.repeats):
        for label, tree, stage, params in runs:
            value = _run(trees[tree], stage, params)
            results.setdefault((label, tree), []).append(value)
            print(f"round {r + 1}: {label} [{tree}] {value}", file=sys.stderr, flush=True)
    env = environment()
    env["baseline"] = args.baseline or str(args.baseline_tree)
    summary = {
        f"{label} [{tree}]": {k: median([v[k] for v in vs]) for k in vs[0]} for (label, tree), vs in results.items()
    }
    write_json(
        args.out,
        {
            "params": {k: str(v) for k, v in vars(args).items()},
            "runs": {f"{l} [{t}]": v for (l, t), v in results.items()},
            "medians": summary,
            "environment": env,
        },
    )
    print(_table(summary))
    print(f"\nmedians of {args.repeats} rounds; baseline {env['baseline']}; {environment_line(env)}")
    return 0


def _table(summary: dict[str, dict[str, float]]) -> str:
    rows = []
    for key, values in summary.items():
        label, tree = key.rsplit(" [", 1)
        base = summary.get(f"{label} [base]")
        for metric, value in values.items():
            if metric in ("seconds", "encoder_only_per_s"):
                continue
            ratio = f"{value / base[metric]:.2f}x" if base and tree == "new]" and base.get(metric) else ""
            rows.append([label, tree.rstrip("]"), metric, f"{value:,.1f}" if value < 100 else f"{value:,.0f}", ratio])
    return markdown_table(["stage", "tree", "metric", "median", "new / base"], rows)


if __name__ == "__main__":
    sys.exit(main())
