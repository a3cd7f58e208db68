"""Hashing and header parsing in worker processes gives what reader threads give.

The oracle is :func:`retrieval.images.gpu_decode.probe_file`, the in-thread reader: same hash,
metadata, orientation, bitstream, CPU pixels and error words for every kind of file.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import torch
from PIL import Image

from retrieval import IngestConfig
from retrieval.images.decode import DecodeConfig
from retrieval.images.gpu_decode import Probe, probe_file, probe_header
from retrieval.images.headers import HeaderReaders, read_header, read_headers
from tests.helpers.catalog_dump import dump
from tests.helpers.files import add_broken_files, make_jpeg
from tests.helpers.paths import REPO

CONFIG = DecodeConfig()


@pytest.fixture
def mixed(photos: Path, tmp_path: Path) -> list[Path]:
    """Baseline JPEGs (one EXIF-rotated), PNGs, a progressive and a CMYK JPEG, broken files, a missing one."""
    folder = tmp_path / "mixed"
    shutil.copytree(photos, folder)
    good = sorted(folder.rglob("*.jpg"))[0]
    add_broken_files(folder, good)
    make_jpeg(folder / "rotated.jpg", (90, 50), 5, 6)
    make_jpeg(folder / "progressive.jpg", (80, 60), 4, progressive=True)
    Image.open(good).convert("CMYK").save(folder / "cmyk.jpg", "JPEG")
    return sorted(folder.rglob("*.*")) + [folder / "gone.jpg"]


def _same(a: Probe, b: Probe) -> None:
    assert (a.key, a.content_hash, a.meta, a.orientation, a.error) == (
        b.key,
        b.content_hash,
        b.meta,
        b.orientation,
        b.error,
    )
    assert (a.jpeg is None) == (b.jpeg is None) and (a.pixels is None) == (b.pixels is None)
    if a.jpeg is not None:
        assert torch.equal(a.jpeg, b.jpeg)
    if a.pixels is not None:
        assert torch.equal(a.pixels, b.pixels)


def test_probe_from_a_worker_header_equals_probe_file(mixed: list[Path], tiny_encoder) -> None:  # noqa: ANN001
    kinds = {"lane": 0, "cpu": 0, "error": 0}
    for path in mixed:
        header = read_header(str(path), CONFIG)
        want = probe_file(path, str(path), CONFIG, tiny_encoder.preprocess)
        got = probe_header(path, str(path), header, CONFIG, tiny_encoder.preprocess)
        _same(got, want)
        kinds["error" if want.error else "lane" if want.jpeg is not None else "cpu"] += 1
        if want.jpeg is not None:  # the worker's own hash and metadata were used
            assert (header.content_hash, header.meta, header.orientation) == (
                want.content_hash,
                want.meta,
                want.orientation,
            )
    assert kinds["lane"] >= 4 and kinds["cpu"] >= 5 and kinds["error"] >= 4  # every kind of file was there


def test_a_file_changed_after_its_worker_read_is_judged_on_this_read(
    photos: Path, tmp_path: Path, tiny_encoder
) -> None:  # noqa: ANN001
    jpegs = sorted(photos.rglob("*.jpg"))
    path = tmp_path / "changing.jpg"
    shutil.copy2(jpegs[0], path)
    header = read_header(str(path), CONFIG)
    shutil.copyfile(jpegs[1], path)
    os.utime(path, ns=(header.mtime_ns + 10**9, header.mtime_ns + 10**9))
    got = probe_header("k", str(path), header, CONFIG, tiny_encoder.preprocess)
    _same(got, probe_file("k", str(path), CONFIG, tiny_encoder.preprocess))
    assert got.content_hash != header.content_hash
    path.unlink()
    assert probe_header("k", str(path), header, CONFIG, tiny_encoder.preprocess).error.startswith("cannot read file:")


def test_worker_processes_equal_serial_reading(mixed: list[Path]) -> None:
    paths = [str(p) for p in mixed]
    with HeaderReaders(2, CONFIG) as readers, ThreadPoolExecutor(3) as pool:
        chunks = pool.map(readers.read, [paths[i : i + 3] for i in range(0, len(paths), 3)])
        got = [h for chunk in chunks for h in chunk]
    assert got == read_headers(paths, CONFIG)


def test_a_dead_worker_is_replaced_by_reading_here(mixed: list[Path]) -> None:
    paths = [str(p) for p in mixed]
    with HeaderReaders(1, CONFIG) as readers:
        assert readers.read(paths[:2]) == read_headers(paths[:2], CONFIG)
        readers._all[0].kill()
        readers._all[0].wait()
        assert readers.read(paths) == read_headers(paths, CONFIG)  # no worker left: read in this thread
        assert readers.read(paths[:1]) == read_headers(paths[:1], CONFIG)


def test_workers_do_not_run_the_callers_main_script(tmp_path: Path, photos: Path) -> None:
    """An unguarded script (no ``if __name__ == "__main__"``) that uses workers runs once."""
    script = tmp_path / "unguarded.py"
    marker = tmp_path / "runs.txt"
    script.write_text(
        "from retrieval.images.decode import DecodeConfig\n"
        "from retrieval.images.headers import HeaderReaders\n"
        f"open({str(marker)!r}, 'a').write('run\\n')\n"
        "with HeaderReaders(2, DecodeConfig()) as r:\n"
        f"    print(len(r.read([{str(next(photos.rglob('*.jpg')))!r}])))\n"
    )
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    done = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=120, env=env)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "1" and marker.read_text() == "run\n"


def test_header_module_never_imports_torch() -> None:
    code = "import sys, retrieval.images.headers; print(sorted(m for m in ('torch', 'torchvision', 'open_clip') if m in sys.modules))"
    done = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"  # a spawned worker pays for PIL, not for torch


def test_header_process_count() -> None:
    assert IngestConfig(header_processes=3).header_process_count(10) == 3
    assert IngestConfig(header_processes=0).header_process_count(10**6) == 0
    auto = IngestConfig().header_process_count
    cores = os.cpu_count() or 1
    assert auto(999) == 0 and auto(10**6) == (min(8, cores - 2) if cores >= 4 else 0)


def test_library_index_with_header_processes_equals_threads(open_library, mixed: list[Path], tmp_path: Path) -> None:  # noqa: ANN001
    folder = tmp_path / "mixed"
    catalogs, reports = {}, {}
    for processes in (0, 2):
        lib = open_library(tmp_path / f"lib-{processes}")
        config = IngestConfig(batch_size=4, gpu_decode="on", gpu_batch_size=4, header_processes=processes)
        report = lib.index([folder], config=config)
        reports[processes] = (report.added, report.failed, report.encoded, sorted(report.failures))
        catalogs[processes] = dump(lib.catalog)
    assert reports[2] == reports[0] and reports[0][1] == 4
    assert catalogs[2] == catalogs[0]  # ids, hashes, metadata and vectors, byte for byte
