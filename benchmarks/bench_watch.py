"""Watch: time from a file's close to searchable, and the watcher's CPU while idle.

Starts ``xmr watch FOLDER --json`` (ViT-B-32 with seeded random weights, on the CPU) as its
own process, waits for its catch-up run, then copies ``--files`` photos into the folder one
at a time: each is written and closed at t0, and t1 is when a separate reader sees its row
committed in the catalog (what any ``xmr search`` then finds). Latency = t1 - t0, which
includes the settle time (``--settle``, default 1 s: a file must keep its size and mtime
that long before it is read) and the batch's decode, embed and commit. Then the watcher
sits idle for ``--idle`` seconds and its CPU time over that span is read from /proc.

    python benchmarks/bench_watch.py --work /tmp/xmr-watch --files 30 --out /tmp/xmr-watch/out.json
"""

from __future__ import annotations

import argparse
import os
import shutil
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

from _common import REPO_ROOT, environment, environment_line, percentile, write_json


def _cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process and its threads (from /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _indexed(catalog: Path, path: str) -> bool:
    with sqlite3.connect(f"file:{catalog}?mode=ro", uri=True, timeout=30) as db:
        row = db.execute("SELECT state FROM images WHERE path = ?", (path,)).fetchone()
    return row is not None and row[0] == "indexed"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--work", type=Path, default=Path("/tmp/xmr-watch"))
    parser.add_argument("--files", type=int, default=30)
    parser.add_argument("--settle", type=float, default=1.0)
    parser.add_argument("--idle", type=float, default=60.0)
    parser.add_argument("--gap", type=float, default=2.0, help="seconds between files once the last is searchable")
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    env = environment()
    print(environment_line(env), flush=True)

    import numpy as np
    import skimage.data
    from PIL import Image

    shutil.rmtree(args.work, ignore_errors=True)
    folder, source = args.work / "photos", args.work / "source"
    folder.mkdir(parents=True)
    source.mkdir()
    rng = np.random.default_rng(0)
    base = np.asarray(skimage.data.astronaut())
    for i in range(args.files + 1):
        noisy = (base.astype(np.float32) + rng.normal(0, 8, base.shape)).clip(0, 255).astype(np.uint8)
        Image.fromarray(noisy).resize((1024, 1024)).save(source / f"p{i:03d}.jpg", quality=90)
    shutil.copy(source / "p000.jpg", folder / "seed.jpg")  # the catch-up run loads the model
    library = args.work / "library"
    command = [sys.executable, str(REPO_ROOT / "cli.py"), "watch", str(folder), "--library", str(library)]
    command += [
        "--model",
        "ViT-B-32",
        "--pretrained",
        "random",
        "--device",
        "cpu",
        "--settle",
        str(args.settle),
        "--json",
    ]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    latencies = []
    try:
        first = process.stdout.readline()  # the catch-up report
        assert '"added": 1' in first, first
        time.sleep(2.0)
        for i in range(1, args.files + 1):
            target = folder / f"new-{i:03d}.jpg"
            data = (source / f"p{i:03d}.jpg").read_bytes()
            with open(target, "wb") as handle:
                handle.write(data)
            t0 = time.perf_counter()  # closed
            while not _indexed(library / "catalog.sqlite", str(target)):
                time.sleep(0.01)
            latencies.append(time.perf_counter() - t0)
            print(f"  file {i}: {latencies[-1]:.2f} s", flush=True)
            time.sleep(args.gap)
        time.sleep(5.0)  # let the last batch's index snapshot be written
        before, start = _cpu_seconds(process.pid), time.perf_counter()
        time.sleep(args.idle)
        idle_cpu = (_cpu_seconds(process.pid) - before) / (time.perf_counter() - start)
    finally:
        process.terminate()
        process.wait(30)
    result = {
        "files": args.files,
        "settle_s": args.settle,
        "p50_s": percentile(latencies, 50),
        "p99_s": percentile(latencies, 99),
        "max_s": max(latencies),
        "idle_cpu_percent": 100 * idle_cpu,
        "idle_s": args.idle,
        "latencies_s": latencies,
    }
    print(
        f"close -> searchable: p50 {result['p50_s']:.2f} s, p99 {result['p99_s']:.2f} s (settle {args.settle} s); "
        f"idle CPU {result['idle_cpu_percent']:.3f}% of one core over {args.idle:.0f} s"
    )
    write_json(args.out, {"environment": env, "watch": result})


if __name__ == "__main__":
    main()
