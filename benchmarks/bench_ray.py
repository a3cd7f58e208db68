"""Indexing with ``--ray`` (Ray Data actors) against a local run of the same folder.

    .venv/bin/python benchmarks/bench_ray.py --count 200 --model ViT-B-32 --work /tmp/xmr-bench-ray

Starts one local Ray (``--ray-cpus``, one CPU per actor) before timing, then per round and
in alternating order: a local ``Library.index`` and a ``--ray`` index of the same JPEGs,
each into a fresh library. Reported per mode (medians over rounds): end-to-end images/s
(``report.seconds``: lock, scan, plan, reading, commits, persist; for Ray also starting the
actors, which load the model), seconds until the first batch was committed, and the rate
after it (steady state). The Ray start itself is timed once, apart.
"""

from __future__ import annotations

import argparse
import logging
import shutil
import tempfile
import time
from pathlib import Path

import _common  # noqa: F401  (sets sys.path and HF_HUB_OFFLINE before the library imports)
from _common import environment, environment_line, markdown_table, median, write_json
from bench_index import generate_photos


def _run(photos: Path, library: Path, args: argparse.Namespace, ray_config) -> dict[str, float]:  # noqa: ANN001
    from retrieval import IngestConfig, Library

    marks: list[tuple[int, float]] = []
    start = time.perf_counter()
    with Library.open(library, model=args.model, pretrained=args.pretrained, device="cpu") as lib:
        report = lib.index(
            [photos],
            config=IngestConfig(batch_size=args.batch_size),
            ray=ray_config,
            on_progress=lambda p: marks.append((p.done, time.perf_counter() - start)),
        )
    assert report.added == args.count and report.failed == 0, report
    first_done, first_s = next((d, s) for d, s in marks if d > 0)
    last_done, last_s = marks[-1]
    return {
        "images_per_s": report.added / report.seconds,
        "first_batch_s": first_s,
        "after_first_per_s": (last_done - first_done) / max(last_s - first_s, 1e-9),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=200)
    parser.add_argument("--size", default="640x480", help="JPEG size WxH")
    parser.add_argument(
        "--model", default="ViT-B-32", help="a --model value, or 'tiny' (the tests' tiny open_clip model)"
    )
    parser.add_argument("--pretrained", default="random")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--ray-cpus", type=int, default=2, help="CPUs of the local Ray (one per actor)")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--work", default="", help="folder for the photos (kept) [default: a temp dir]")
    parser.add_argument("--out", default="")
    args = parser.parse_args()

    import ray

    from retrieval.ingest.distributed import RayConfig

    work = Path(args.work or tempfile.mkdtemp(prefix="xmr-bench-ray-"))
    width, height = (int(v) for v in args.size.split("x"))
    photos = generate_photos(work, args.count, (width, height))[0].parent
    if args.model == "tiny":
        from tests.tiny_model import make_tiny_model

        args.model = (
            f"local-dir:{make_tiny_model(work / 'tiny-model')}"
            if not (work / "tiny-model").is_dir()
            else f"local-dir:{work / 'tiny-model'}"
        )
    started = time.perf_counter()
    ray.init(num_cpus=args.ray_cpus, include_dashboard=False, logging_level=logging.WARNING, log_to_driver=False)
    ray_start_s = time.perf_counter() - started
    modes = {"local": None, f"ray, {args.ray_cpus} actors x 1 CPU": RayConfig(cpus_per_actor=1, actors=args.ray_cpus)}
    results: dict[str, list[dict[str, float]]] = {mode: [] for mode in modes}
    try:
        for round_ in range(args.repeats):
            order = list(modes) if round_ % 2 == 0 else list(modes)[::-1]  # load from others hits both alike
            for mode in order:
                library = work / "library"
                shutil.rmtree(library, ignore_errors=True)
                results[mode].append(_run(photos, library, args, modes[mode]))
                print(mode, {k: round(v, 2) for k, v in results[mode][-1].items()}, flush=True)
    finally:
        ray.shutdown()
    env = environment(("numpy", "torch", "open_clip", "PIL", "ray"))
    local_rate = median([r["images_per_s"] for r in results["local"]])
    rows = []
    for mode, runs in results.items():
        rate = median([r["images_per_s"] for r in runs])
        rows.append(
            [
                mode,
                f"{rate:.1f}",
                f"{rate / local_rate:.2f}",
                f"{median([r['first_batch_s'] for r in runs]):.1f}",
                f"{median([r['after_first_per_s'] for r in runs]):.1f}",
            ]
        )
    print(environment_line(env))
    model = args.model if args.model.startswith("local-dir:") else f"{args.model}/{args.pretrained}"
    print(
        f"{args.count} JPEGs {args.size}, {model}, batch {args.batch_size}, "
        f"medians of {args.repeats}; ray.init {ray_start_s:.1f} s (not counted)"
    )
    print(markdown_table(["mode", "end-to-end img/s", "vs local", "first batch s", "after 1st batch img/s"], rows))
    write_json(args.out, {"env": env, "args": vars(args), "ray_start_s": ray_start_s, "results": results})


if __name__ == "__main__":
    main()
