"""Building an on-disk index from a stream of vectors, in a fresh directory.

The build never holds more than one chunk of vectors and a training sample in memory:
centroids are trained on the sample, list regions are sized from how the sample spreads
over them, and the chunks are then appended (a list that fills up moves, as in
:func:`index.kinds.ondisk.append_rows`). Nothing refers to the directory until a snapshot that
names it is written, so an interrupted build leaves only an orphan directory behind.
"""

from __future__ import annotations

import contextlib
import secrets
import shutil
import time
from collections.abc import Callable, Iterable
from pathlib import Path

import numpy as np

from index.atomic import fsync_dir
from index.deps import require_faiss
from index.kinds.ivf import ivf_lists, training_sample
from index.kinds.ondisk import Layout, OnDiskIndex, RowFiles, append_rows, assign
from index.vectors import AUTO_NPROBE, as_matrix, normalize

Chunks = Callable[[], Iterable[tuple[np.ndarray, np.ndarray]]]  # yields (ids (b,), vectors (b, dim))
ORPHAN_AGE_S = 600  # build directories unused for this long (and not current) are deleted
MAX_SAMPLE = 1 << 18  # training vectors at most (512 MB at 512-d); faiss wants ~64 per list


def sample_size(count: int) -> int:
    """Vectors to train ``count`` vectors' centroids on: 64 per list, at most ``MAX_SAMPLE``."""
    return min(count, max(1 << 12, 64 * list_count(count)), MAX_SAMPLE)


def builds_dir(snapshot: Path) -> Path:
    """The folder holding the build directories of the snapshot at ``snapshot``."""
    return Path(f"{snapshot}.d")


def new_build_dir(snapshot: Path) -> Path:
    """A new, empty, uniquely named build directory next to ``snapshot``."""
    path = builds_dir(snapshot) / f"{time.strftime('%Y%m%d-%H%M%S')}-{secrets.token_hex(4)}"
    path.mkdir(parents=True)
    return path


def remove_orphans(snapshot: Path, keep: Iterable[Path], min_age_s: float = ORPHAN_AGE_S) -> int:
    """Delete build directories other than ``keep`` whose files are older than ``min_age_s``.

    The age check spares a build another process may have started or still be reading.
    """
    root = builds_dir(snapshot)
    keep = {Path(p).resolve() for p in keep}
    removed = 0
    for build in root.glob("*") if root.exists() else ():
        if build.resolve() in keep or not build.is_dir():
            continue
        newest = max([build.stat().st_mtime, *(f.stat().st_mtime for f in build.iterdir())])
        if time.time() - newest >= min_age_s:
            with contextlib.suppress(OSError):
                shutil.rmtree(build)
                removed += 1
    return removed


def list_count(count: int) -> int:
    """Lists for ``count`` vectors: as IVF, but at least ~39 training points per list."""
    return max(1, min(ivf_lists(count), count // 39))


def train_centroids(sample: np.ndarray, nlist: int, seed: int = 0) -> np.ndarray:
    """``(nlist, dim)`` unit centroids: spherical k-means on ``sample``."""
    dim = sample.shape[1]
    if nlist <= 1 or len(sample) < nlist:
        mean = sample.mean(axis=0, keepdims=True) if len(sample) else np.ones((1, dim), np.float32)
        return normalize(mean.astype(np.float32))
    kmeans = require_faiss().Kmeans(dim, nlist, niter=10, spherical=True, seed=seed, verbose=False)
    kmeans.train(np.ascontiguousarray(sample, np.float32))
    return normalize(kmeans.centroids)


def build_ondisk(
    directory: Path,
    dim: int,
    chunks: Chunks,
    count: int,
    sample: np.ndarray,
    nprobe: int = AUTO_NPROBE,
    target_recall: float = 0.95,
    seed: int = 0,
) -> OnDiskIndex:
    """Build an on-disk index of the ``count`` vectors ``chunks()`` yields, in ``directory``.

    ``sample`` (a random subset of the vectors) trains the centroids; ``nprobe=0`` tunes
    the probed lists to ``target_recall`` recall@10 against exact search, using sample rows
    as queries.
    """
    sample = as_matrix(sample, dim)
    nlist = list_count(count)
    centroids = train_centroids(training_sample(sample, nlist * 64, seed), nlist, seed)
    share = np.bincount(assign(centroids, sample), minlength=nlist) / max(1, len(sample))
    capacity = np.ceil(share * count * 1.25).astype(np.int64) + 8  # room for the sample's error
    table = np.stack([np.concatenate([[0], np.cumsum(capacity)[:-1]]), np.zeros(nlist, np.int64), capacity], axis=1)
    layout = Layout(Path(directory), centroids, table, np.zeros(int(capacity.sum()), bool), int(capacity.sum()))
    files = RowFiles(directory, dim)
    files.reserve(layout.rows)
    for ids, vectors in chunks():
        layout = append_rows(layout, files, np.asarray(ids, np.int64), as_matrix(vectors, dim))
    files.reserve(layout.rows)
    fsync_dir(Path(directory))
    fsync_dir(Path(directory).parent)
    index = OnDiskIndex(dim, layout, files, max(nprobe, 1), count)
    if nprobe <= 0 and len(index):
        index.nprobe = tune_ondisk(index, sample, target_recall, seed)
    return index


def tune_ondisk(index: OnDiskIndex, sample: np.ndarray, target: float, seed: int = 0, queries: int = 128) -> int:
    """Smallest power-of-two nprobe whose recall@10 reaches ``target`` (self-matches left out)."""
    rng = np.random.default_rng(seed + 1)
    picked = np.ascontiguousarray(sample[rng.choice(len(sample), min(queries, len(sample)), replace=False)])
    truth = [set(n.ids[1:11].tolist()) for n in index.exact_truth(picked, 11)]
    nprobe = 8
    while nprobe < index.nlist:
        found = index.search(picked, 11, nprobe=nprobe)
        hits = sum(len(t & set(f.ids[1:11].tolist())) for t, f in zip(truth, found))
        if hits / max(1, sum(len(t) for t in truth)) >= target:
            return nprobe
        nprobe *= 2
    return index.nlist


def build_ondisk_from_arrays(
    snapshot: Path,
    dim: int,
    ids: np.ndarray,
    vectors: np.ndarray,
    nprobe: int = AUTO_NPROBE,
    target_recall: float = 0.95,
) -> OnDiskIndex:
    """Build an on-disk index of in-memory ``ids``/``vectors`` in a new directory next to ``snapshot``."""
    vectors = as_matrix(vectors, dim)
    ids = np.asarray(ids, np.int64)

    def chunks() -> Iterable[tuple[np.ndarray, np.ndarray]]:
        for start in range(0, len(ids), 1 << 16):
            yield ids[start : start + (1 << 16)], vectors[start : start + (1 << 16)]

    sample = training_sample(vectors, sample_size(len(ids)))
    return build_ondisk(new_build_dir(snapshot), dim, chunks, len(ids), sample, nprobe, target_recall)
