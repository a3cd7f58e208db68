"""xmr serve: text-search latency and throughput with 1, 4 and 16 concurrent HTTP clients at
100k images, against a CLI cold start per query, and what another process's commits cost.

    .venv/bin/python benchmarks/bench_serve.py --size 100000 --out serve.json

The library is synthetic: ``--size`` clustered 512-d unit vectors (bench_query's generator)
written straight into the catalog as indexed images, with ViT-B-32 and seeded random weights
as the model (text encoding costs what it costs with real weights; the rankings mean
nothing). The server runs as ``xmr serve`` in its own process; clients are threads here,
each sending ``GET /api/search?q=...&k=10`` back to back with varied texts. The baseline
runs ``xmr search TEXT --json -k 10`` as a fresh process per query. The last run adds a
writer that commits ``--write-batch`` new images to the catalog every ``--write-every``
seconds, as an index run in another process would, while 4 clients search: each commit
makes the server's next search apply it to its in-memory index.
"""

from __future__ import annotations

import argparse
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import _common  # noqa: F401  (sets sys.path before the library imports)
import numpy as np
from _common import (
    environment,
    environment_line,
    markdown_table,
    median,
    percentile,
    write_json,
)
from bench_query import DIM, Clustered

WORDS = "dog cat beach sunset mountain city night snow forest river car bicycle child portrait food market boat bridge garden flower".split()
XMR = str(Path(sys.executable).with_name("xmr"))


def queries(n: int, seed: int = 0) -> list[str]:
    rng = np.random.default_rng(seed)
    return [f"a photo of a {rng.choice(WORDS)} and a {rng.choice(WORDS)} at {rng.choice(WORDS)}" for _ in range(n)]


def build_library(root: Path, size: int, seed: int) -> None:
    """A library of ``size`` synthetic indexed images (vectors in the catalog, snapshot written)."""
    from sqlalchemy import insert, update
    from sqlalchemy.orm import Session

    from index.lock import WriteLock
    from index.schema import ImageRow, Meta
    from retrieval import Library

    lib = Library.open(root, model="ViT-B-32", pretrained="random", device="cpu")
    vectors = Clustered(DIM, 1000, seed).sample(size, seed + 1)
    with lib.catalog.engine.begin() as conn:
        for start in range(0, size, 20_000):
            rows = [
                {
                    "path": f"/photos/{i // 1000:03d}/{i:07d}.jpg",
                    "size": 1,
                    "mtime_ns": i,
                    "content_hash": f"{i:032x}",
                    "state": "indexed",
                    "width": 640,
                    "height": 480,
                    "format": "JPEG",
                    "vector": vectors[i].astype("<f4").tobytes(),
                    "vector_gen": 1,
                }
                for i in range(start, min(size, start + 20_000))
            ]
            conn.execute(insert(ImageRow), rows)
    with Session(lib.catalog.engine) as session, session.begin():
        session.execute(update(Meta).where(Meta.key == "generation").values(value="1"))
    with WriteLock(lib.layout.lock):
        lib.images.persist()
    lib.close()


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def start_server(root: Path, port: int) -> tuple[subprocess.Popen, float]:
    """``xmr serve`` in a new process; (process, seconds until /api/health answered)."""
    import httpx

    start = time.perf_counter()
    proc = subprocess.Popen(
        [XMR, "serve", "--library", str(root), "--port", str(port), "--device", "cpu"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        env={**os.environ, "HF_HUB_OFFLINE": "1"},
    )
    while True:
        if proc.poll() is not None:
            raise RuntimeError(f"xmr serve exited: {proc.stderr.read().decode()[-2000:]}")  # type: ignore[union-attr]
        try:
            if httpx.get(f"http://127.0.0.1:{port}/api/health", timeout=1).status_code == 200:
                return proc, time.perf_counter() - start
        except httpx.HTTPError:
            pass
        time.sleep(0.1)


def load(url: str, clients: int, per_client: int, texts: list[str]) -> dict[str, float]:
    """``clients`` threads each sending ``per_client`` searches back to back; latency stats and q/s."""
    import httpx

    latencies: list[float] = []
    errors: list[str] = []
    lock = threading.Lock()

    def client(index: int) -> None:
        with httpx.Client(base_url=url, timeout=120) as http:
            for j in range(per_client):
                text = texts[(index * per_client + j) % len(texts)]
                start = time.perf_counter()
                response = http.get("/api/search", params={"q": text, "k": 10})
                took = time.perf_counter() - start
                with lock:
                    (latencies if response.status_code == 200 else errors).append(
                        took if response.status_code == 200 else response.text
                    )  # type: ignore[arg-type]

    threads = [threading.Thread(target=client, args=(i,)) for i in range(clients)]
    start = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.perf_counter() - start
    if errors:
        raise RuntimeError(f"{len(errors)} failed searches, e.g. {errors[0]}")
    ms = [x * 1e3 for x in latencies]
    return {
        "clients": clients,
        "queries": len(ms),
        "p50_ms": median(ms),
        "p99_ms": percentile(ms, 99),
        "qps": len(ms) / wall,
    }


def cli_cold_start(root: Path, texts: list[str], repeats: int) -> list[float]:
    """Seconds per ``xmr search TEXT`` run as a fresh process (import, model build, index load, search)."""
    times = []
    for text in texts[:repeats]:
        start = time.perf_counter()
        subprocess.run(
            [XMR, "search", text, "--library", str(root), "--json", "-k", "10", "--device", "cpu"],
            check=True,
            capture_output=True,
            env={**os.environ, "HF_HUB_OFFLINE": "1"},
        )
        times.append(time.perf_counter() - start)
    return times


class Writer(threading.Thread):
    """Commits ``batch`` new indexed images every ``every`` seconds through Catalog.apply (an index run's commit)."""

    def __init__(self, root: Path, batch: int, every: float, seed: int) -> None:
        super().__init__(daemon=True)
        self.root, self.batch, self.every, self.seed = root, batch, every, seed
        self.stop = threading.Event()
        self.commits = 0

    def run(self) -> None:
        from index.catalog import Catalog, sqlite_url
        from index.records import Embedded, FileStat, ImageMeta

        catalog = Catalog(sqlite_url(str(self.root / "catalog.sqlite")))
        gen = Clustered(DIM, 1000, self.seed)
        while not self.stop.wait(self.every):
            vectors = gen.sample(self.batch, self.seed + 100 + self.commits)
            items = [
                Embedded(
                    FileStat(f"/photos/new/{self.commits:04d}-{i:04d}.jpg", 1, i),
                    f"new{self.commits:04d}{i:04d}",
                    ImageMeta(640, 480, "JPEG"),
                    v.astype("<f4").tobytes(),
                )
                for i, v in enumerate(vectors)
            ]
            catalog.apply(embedded=items)
            self.commits += 1
        catalog.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", type=int, default=100_000)
    parser.add_argument("--per-client", type=int, default=0, help="searches per client (0: 160 / clients, at least 20)")
    parser.add_argument("--cli-repeats", type=int, default=5)
    parser.add_argument("--write-batch", type=int, default=100)
    parser.add_argument("--write-every", type=float, default=2.0)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args(argv)
    env = environment(("numpy", "faiss", "torch", "open_clip", "fastapi", "uvicorn"))
    texts = queries(2000, args.seed)
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "library"
        start = time.perf_counter()
        build_library(root, args.size, args.seed)
        print(f"library of {args.size:,} synthetic images built in {time.perf_counter() - start:.0f} s", flush=True)
        port = free_port()
        server, startup = start_server(root, port)
        url = f"http://127.0.0.1:{port}"
        print(f"xmr serve ready in {startup:.1f} s (model + index loaded once)", flush=True)
        try:
            load(url, 2, 10, texts[-50:])  # warm-up
            rows = []
            for clients in (1, 4, 16):
                per = args.per_client or max(20, 160 // clients)
                rows.append(load(url, clients, per, texts))
                print(rows[-1], flush=True)
            writer = Writer(root, args.write_batch, args.write_every, args.seed)
            writer.start()
            per = args.per_client or 60
            during = load(url, 4, per, texts[1000:])
            writer.stop.set()
            writer.join()
            during.update(writes=writer.commits, write_batch=args.write_batch, write_every_s=args.write_every)
            print("with a writer:", during, flush=True)
        finally:
            server.terminate()
            server.wait(timeout=30)
        cold = cli_cold_start(root, texts, args.cli_repeats)
        print(f"CLI cold start per query: median {median(cold):.2f} s over {len(cold)}", flush=True)
    table = [
        [
            r["clients"],
            r["queries"],
            f"{r['p50_ms']:.0f}",
            f"{r['p99_ms']:.0f}",
            f"{r['qps']:.1f}",
            f"{median(cold) / (r['p50_ms'] / 1e3):.0f}x",
        ]
        for r in rows
    ]
    table.append(
        [
            f"4 + writer ({during['writes']} commits of {args.write_batch})",
            during["queries"],
            f"{during['p50_ms']:.0f}",
            f"{during['p99_ms']:.0f}",
            f"{during['qps']:.1f}",
            "",
        ]
    )
    table.append(
        [
            "CLI cold start per query",
            len(cold),
            f"{median(cold) * 1e3:.0f}",
            f"{max(cold) * 1e3:.0f} (max)",
            f"{1 / median(cold):.2f}",
            "1x",
        ]
    )
    print(markdown_table(["clients", "queries", "p50 ms", "p99 ms", "queries/s", "p50 vs CLI"], table))
    print(environment_line(env))
    write_json(
        args.out,
        {
            "size": args.size,
            "server_startup_s": startup,
            "rows": rows,
            "with_writer": during,
            "cli_cold_start_s": cold,
            "environment": env,
        },
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
