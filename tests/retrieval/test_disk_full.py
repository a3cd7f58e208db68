"""A full disk is called a full disk: reads keep working, nothing is lost (issue 23, item 7).

The library lives on a real, small filesystem (a tmpfs mounted for the test, which needs
root on Linux; elsewhere the test is skipped and says why), filled to a few KB before an
index run. Simulating ENOSPC by patching writes would miss SQLite's own files (its WAL and
shared memory, which even a reader needs), where the misleading "restore from a backup"
came from.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from tests.helpers.files import make_jpeg

_DISK = "24m"


@pytest.fixture
def small_disk(tmp_path: Path):  # noqa: ANN201
    """A 24 MB tmpfs at ``tmp_path / "disk"``, unmounted after the test."""
    mount = tmp_path / "disk"
    mount.mkdir()
    if sys.platform != "linux" or os.geteuid() != 0:
        pytest.skip("a real full filesystem needs a tmpfs, which only root can mount (Linux): not tested here")
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={_DISK}", "tmpfs", str(mount)], capture_output=True, text=True
    )
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here ({done.stderr.strip() or done.returncode}): a full disk is not tested")
    yield mount
    subprocess.run(["umount", "-l", str(mount)], capture_output=True)


def _fill(disk: Path, leave_kb: int) -> Path:
    """Write a file that leaves ``leave_kb`` KB free on ``disk``; returns it (delete it to free the space)."""
    filler = disk / "filler"
    with open(filler, "wb") as handle:
        remaining = shutil.disk_usage(disk).free - leave_kb * 1024
        while remaining > 0:
            remaining -= handle.write(b"\0" * min(1 << 20, remaining))
    assert shutil.disk_usage(disk).free <= leave_kb * 1024 + 4096
    return filler


@pytest.mark.parametrize("leave_kb", [0, 8, 40, 400])
def test_a_full_disk_is_named_reads_keep_working_and_nothing_is_lost(
    small_disk: Path,
    photos: Path,
    tiny_encoder,
    leave_kb: int,  # noqa: ANN001
) -> None:
    from retrieval import DiskFullError, Library

    folder = small_disk / "photos"
    shutil.copytree(photos, folder)
    library = small_disk / "library"
    with Library.open(library, model=tiny_encoder) as lib:
        lib.index([folder], cache_tokens=True)
    more = folder / "more"
    more.mkdir()
    for i in range(8):
        make_jpeg(more / f"m{i}.jpg", (320, 240), seed=i)
    filler = _fill(small_disk, leave_kb)

    with Library.open(library, model=tiny_encoder) as lib:  # opening works on a full disk
        try:
            lib.index([folder])
        except DiskFullError as exc:
            said = str(exc)
            assert "is full" in said and "nothing written before was lost" in said and "not damaged" in said
        else:
            assert leave_kb > 40, "an index run on a full disk cannot have written all of it"
    with Library.open(library, model=tiny_encoder) as reader:  # reads on the full disk
        info = reader.info()
        assert info.images >= 6 and info.vectors == info.images
        hits = reader.search(text="a cat", k=3)
        assert len(hits) == 3 and all(Path(h.path).exists() for h in hits)

    filler.unlink()  # space freed: the same command finishes the job
    with Library.open(library, model=tiny_encoder) as lib:
        report = lib.index([folder])
        assert report.failed == 0
        assert lib.info().images == 14 and lib.images.agrees_with_catalog()
        stored = lib.catalog.vectors_for(lib.catalog.vector_ids("images").tolist())
        for image_id, blob in stored.items():  # every image, old and new, finds itself
            assert lib.search_vector(np.frombuffer(blob, "<f4"), k=1)[0].id == image_id
