"""Run an index plan: decode in worker threads, encode in batches, commit batch by batch.

Pillow and torch both release the GIL while they work, so decoder threads keep the
encoder fed without the pickling cost of processes. On the GPU decode path the header
work that holds the GIL can go to worker processes (``header_processes``). Batches are
embedded and committed by :mod:`retrieval.ingest.commit` (one transaction each; an interrupt
loses at most the batch in flight).
"""

from __future__ import annotations

import contextlib
import os
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import replace
from typing import TYPE_CHECKING

from index.records import Captions, FileStat
from index.tokens import TokenCache
from retrieval.errors import ImageDecodeError
from retrieval.images.decode import DecodeConfig, decode_file
from retrieval.ingest.commit import Progress, Read, Tally, commit_reads, embed_captions
from retrieval.ingest.config import IngestConfig
from retrieval.ingest.scan import Plan
from retrieval.ingest.sidecars import sidecar_captions
from retrieval.models.encoder import Encoder

if TYPE_CHECKING:
    from index.catalog import Catalog
    from retrieval.images.headers import HeaderReaders

__all__ = ["apply_plan_edits", "read_stat", "run_plan"]


_HEADER_CHUNK = 16  # files per task for a header process: amortises the pickling round trip
_IDENTIFY_BATCH = 5000  # identities recorded per catalog transaction


def _read(stat: FileStat, encoder: Encoder, config: DecodeConfig) -> Read:
    try:
        decoded = decode_file(stat.path, config)
        read = read_stat(stat, decoded.status)
        return Read(read, decoded.content_hash, encoder.preprocess(decoded.image), decoded.meta)
    except ImageDecodeError as exc:
        return Read(stat, error=str(exc))
    except Exception as exc:  # a bad file must never stop the run; keep the reason
        return Read(stat, error=f"{exc.__class__.__name__}: {exc}")


def read_stat(scanned: FileStat, status: os.stat_result | None) -> FileStat:
    """The stat to record for a file: that of the descriptor whose bytes were hashed and decoded
    (size, mtime, device and inode all of the same read), else the scan's (identity unknown)."""
    return scanned if status is None else FileStat.of(scanned.path, status)


def _reads(plan: Plan, encoder: Encoder, config: IngestConfig) -> Iterator[Read]:
    """Decoded files in plan order, with a bounded number in flight."""
    window = config.batch_size * config.prefetch_batches
    with ThreadPoolExecutor(config.worker_count(), thread_name_prefix="xmr-decode") as pool:
        pending: deque[Future[Read]] = deque()
        todo = iter(plan.todo)
        try:
            for stat in todo:
                pending.append(pool.submit(_read, stat, encoder, config.decode))
                if len(pending) >= window:
                    yield pending.popleft().result()
            while pending:
                yield pending.popleft().result()
        finally:
            for future in pending:
                future.cancel()


def run_plan(
    plan: Plan,
    encoder: Encoder,
    catalog: Catalog,
    config: IngestConfig,
    on_progress: Callable[[Progress], None] | None = None,
    tokens: TokenCache | None = None,
) -> Tally:
    """Apply moves and removals, then read, embed and commit ``plan.todo`` batch by batch.

    With ``tokens``, each encoded image's token grid is appended to that cache (same forward
    pass) before the catalog transaction of its batch.
    """
    apply_plan_edits(plan, encoder, catalog, config)
    gpu = _gpu_reads(plan, encoder, config) if plan.todo else None
    if gpu is not None:
        reads, size = gpu
        return commit_reads(reads, plan, encoder, catalog, replace(config, batch_size=size), on_progress, tokens)
    return commit_reads(_reads(plan, encoder, config), plan, encoder, catalog, config, on_progress, tokens)


def _gpu_reads(plan: Plan, encoder: Encoder, config: IngestConfig) -> tuple[Iterator[Read], int] | None:
    """Files decoded and preprocessed in batches by :mod:`retrieval.images.gpu_decode`, and the batch
    size, when ``config.gpu_decode`` and the encoder call for it; None keeps the CPU path.

    "on" also works without a GPU (torchvision then decodes the batches on the CPU).
    """
    device = str(getattr(encoder, "device", "cpu"))
    transform = getattr(encoder, "transform", None)  # torch encoders only: onnxruntime ones preprocess on the CPU
    if config.gpu_decode == "off" or (config.gpu_decode == "auto" and not device.startswith("cuda")) or not transform:
        return None
    from retrieval.images import gpu_decode

    spec = gpu_decode.pixel_spec(transform)
    on_gpu = gpu_decode.gpu_decode_available(device)
    if spec is None or (config.gpu_decode == "auto" and not on_gpu):
        return None
    preprocessor = gpu_decode.Preprocessor(spec, device if on_gpu else "cpu", config.decode, encoder.preprocess)
    size = max(config.batch_size, config.gpu_batch_size)
    processes = config.header_process_count(len(plan.todo))
    workers = config.workers if config.workers > 0 else min(8, os.cpu_count() or 1)
    workers = max(workers, processes)  # a reader thread waits on each busy header process

    def reads() -> Iterator[Read]:
        # The pixels are rows of a tensor made on the decoder's stream, which it synchronised
        # before handing them over; _prepare's encode is done with them before they are freed.
        items = [(stat, stat.path) for stat in plan.todo]
        with contextlib.ExitStack() as stack:
            if processes:
                from retrieval.images.headers import HeaderReaders

                readers = stack.enter_context(HeaderReaders(processes, config.decode))
                probe, chunk = _probe_with(readers, config.decode, encoder.preprocess), _HEADER_CHUNK
            else:
                probe, chunk = (
                    gpu_decode.each(
                        lambda stat, path: gpu_decode.probe_file(stat, path, config.decode, encoder.preprocess)
                    ),
                    1,
                )
            batches = gpu_decode.iter_batches(items, probe, preprocessor, size, workers, config.prefetch_batches, chunk)
            stack.callback(batches.close)  # runs first: the reader threads stop before the header processes do
            for probes, pixels in batches:
                for row, p in enumerate(probes):
                    stat = read_stat(p.key, p.status)  # type: ignore[arg-type]
                    yield Read(stat, p.content_hash, None if p.error else pixels[row], p.meta, p.error)

    return reads(), size


def _probe_with(readers: HeaderReaders, decode: DecodeConfig, preprocess: Callable) -> Callable:
    """A chunk prober: a worker process hashes and parses, this thread reads for the GPU."""
    from retrieval.images.gpu_decode import probe_header

    def probe(chunk: list[tuple[FileStat, str]]) -> list:
        headers = readers.read([path for _, path in chunk])
        return [probe_header(stat, path, header, decode, preprocess) for (stat, path), header in zip(chunk, headers)]

    return probe


def apply_plan_edits(plan: Plan, encoder: Encoder, catalog: Catalog, config: IngestConfig) -> None:
    """Commit the plan's moves, removals and caption-only updates (no image is read)."""
    if plan.moved or plan.removed:
        catalog.apply(moved=plan.moved, removed=plan.removed, captions={p: Captions(0) for p in plan.removed_paths})
    for start in range(0, len(plan.identified), _IDENTIFY_BATCH):  # which file each old row is (hash checked)
        catalog.apply(touched=plan.identified[start : start + _IDENTIFY_BATCH])
    for start in range(0, len(plan.recaption), config.batch_size):  # sidecars edited, images not
        rows = plan.recaption[start : start + config.batch_size]
        found = {r.path: sidecar_captions(r.path, r.description) for r in rows}
        catalog.apply(captions=embed_captions(found, plan, encoder))
