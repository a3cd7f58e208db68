"""An index run killed with SIGKILL mid-run leaves a consistent library that resumes."""

from __future__ import annotations

import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
from PIL import Image

from index.catalog import Catalog
from tests.helpers.paths import REPO

COUNT = 240  # enough decoding work (640x480 JPEGs, one worker) to be caught mid-run


def _many_photos(folder: Path, source: Path, count: int) -> None:
    folder.mkdir()
    rng = np.random.default_rng(0)
    sources = [np.asarray(Image.open(p).convert("RGB").resize((640, 480))) for p in sorted(source.iterdir())]
    noise = rng.integers(-20, 20, (16, 480, 640, 3))
    for i in range(count):
        noisy = np.clip(sources[i % len(sources)].astype(int) + noise[i % 16] + i, 0, 255)
        Image.fromarray(noisy.astype(np.uint8)).save(folder / f"img{i:03d}.jpg", quality=90)


def _index_command(library: Path, model: Path, folder: Path) -> list[str]:
    return [
        sys.executable,
        "-m",
        "cli",
        "index",
        str(folder),
        "--library",
        str(library),
        "--model",
        f"local-dir:{model}",
        "--batch-size",
        "2",
        "--workers",
        "1",
        "--json",
    ]


def test_kill_9_mid_index_then_resume(tmp_path: Path, tiny_model_dir: Path, photo_source: Path) -> None:
    from retrieval import Library

    folder, library = tmp_path / "many", tmp_path / "library"
    _many_photos(folder, photo_source, COUNT)
    proc = subprocess.Popen(
        _index_command(library, tiny_model_dir, folder), cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )
    deadline = time.monotonic() + 120
    committed = 0
    while time.monotonic() < deadline and proc.poll() is None:
        if (library / "catalog.sqlite").exists():
            catalog = Catalog(f"sqlite:///{library / 'catalog.sqlite'}")
            committed = catalog.counts()["images"]
            catalog.close()
            if committed >= 10:
                break
        time.sleep(0.02)
    assert proc.poll() is None, f"the run ended before it could be killed: {proc.stderr.read().decode()[-2000:]}"
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert 10 <= committed < COUNT

    with Library.open(library, create=False, device="cpu") as lib:
        assert lib.images.agrees_with_catalog()  # the stale snapshot was brought up to date
        kept = lib.info().images
        assert kept >= committed
        report = lib.index([folder])
        assert report.added == COUNT - kept and report.failed == 0
        assert lib.info().images == COUNT
        assert lib.images.agrees_with_catalog()
    shutil.rmtree(folder)
