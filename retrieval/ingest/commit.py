"""Commit what an index run has read: embed what needs it, write each batch in one transaction.

Reads arrive in plan order from any reader (decoder threads, the GPU decode path, Ray
workers). A batch whose bytes are already known (a copy of an indexed file) reuses the
stored vector instead of encoding. Each batch is one catalog transaction, so an interrupt
loses at most the batch in flight; with ``commit_ahead`` that transaction runs in a
background thread while the next batch is encoded, and the next batch's look-up of known
content accounts for the batch still being written, so the outcome is that of committing
each batch before the next.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from index.records import FAILED, Captions, Embedded, Failed, FileStat
from index.tokens import TokenCache
from retrieval.ingest.scan import Plan
from retrieval.ingest.sidecars import sidecar_captions
from retrieval.models.encoder import Encoder

if TYPE_CHECKING:
    from index.catalog import Catalog
    from retrieval.ingest.config import IngestConfig

__all__ = ["Progress", "Read", "Tally", "commit_reads", "embed_captions"]


@dataclass(frozen=True)
class Progress:
    """Where a run stands; handed to the progress callback after every batch."""

    done: int  # files read so far (embedded, copied, unchanged content, or failed)
    total: int  # files to read in this run
    failed: int  # of ``done``, how many failed
    seconds: float  # since reading started


@dataclass
class Tally:
    """What a run did, counted as its batches commit."""

    added: int = 0
    updated: int = 0
    touched: int = 0
    failed: list[tuple[str, str]] = field(default_factory=list)
    encoded: int = 0  # images that went through the encoder (or a Ray worker's)

    def merge(self, other: Tally) -> None:
        self.added += other.added
        self.updated += other.updated
        self.touched += other.touched
        self.failed.extend(other.failed)
        self.encoded += other.encoded


@dataclass(frozen=True)
class Read:
    """One file read for indexing: decoded pixels or a ready vector, or why it failed."""

    stat: FileStat
    content_hash: str = ""
    pixels: object = None  # torch.Tensor (3, H, W)
    meta: object = None  # ImageMeta
    error: str = ""
    vector: bytes = b""  # "<f4" unit vector made elsewhere (a Ray worker): no encoding here
    grid: bytes = b""  # float16 token grid made with ``vector`` (a Ray worker filling the token cache)


def commit_reads(
    reads: Iterable[Read],
    plan: Plan,
    encoder: Encoder,
    catalog: Catalog,
    config: IngestConfig,
    on_progress: Callable[[Progress], None] | None = None,
    tokens: TokenCache | None = None,
) -> Tally:
    """Commit ``reads`` (in plan order) in batches of ``config.batch_size``, one transaction each.

    Reads carrying a ``vector`` are not encoded again; ``encoder`` embeds the rest and
    every sidecar caption. With ``config.commit_ahead`` a batch's transaction runs in a
    background thread while the next batch is encoded (one transaction in flight, in
    order). Whatever stops the loop, the batches committed so far stay, and no
    transaction is still running when this returns or raises.
    """
    tally = Tally()
    start = time.perf_counter()
    done = 0
    ahead = config.commit_ahead and not _per_thread_database(catalog)
    committer = ThreadPoolExecutor(1, thread_name_prefix="xmr-commit") if ahead else None
    pending: _Pending | None = None

    def finish(batch: _Pending) -> None:
        nonlocal done
        batch.future.result()  # the transaction's own error, if it failed
        tally.merge(batch.tally)
        done += batch.size
        if on_progress:
            on_progress(Progress(done, len(plan.todo), len(tally.failed), time.perf_counter() - start))

    try:
        for batch in _batches(reads, config.batch_size):
            writes = _prepare(batch, plan, encoder, catalog, tokens, pending)
            if pending is not None:
                finish(pending)  # before the next is submitted: an interrupt here keeps only what was reported
            pending = writes.submit(catalog, committer)
        if pending is not None:
            finish(pending)
            pending = None
        if on_progress:
            on_progress(Progress(done, len(plan.todo), len(tally.failed), time.perf_counter() - start))
    finally:
        if committer is not None:
            committer.shutdown(wait=True)  # an interrupted run still lets the transaction in flight end
    return tally


def _per_thread_database(catalog: Catalog) -> bool:
    """An in-memory SQLite catalog is one database per thread: its writes must stay on this one."""
    url = catalog.engine.url
    return url.get_backend_name() == "sqlite" and url.database in (None, "", ":memory:")


def _batches(reads: Iterable[Read], size: int) -> Iterator[list[Read]]:
    batch: list[Read] = []
    for item in reads:
        batch.append(item)
        if len(batch) >= size:
            yield batch
            batch = []
    if batch:
        yield batch


@dataclass
class _Writes:
    """One batch, embedded and ready for its catalog transaction."""

    size: int  # reads in the batch
    records: list[Embedded]
    failed: list[Failed]
    touched: list[FileStat]
    captions: dict[str, Captions]
    tally: Tally  # what the batch adds to the run's tally once committed
    hashed: dict[str, int] = field(default_factory=dict)  # path -> perceptual hash the row lacked

    def submit(self, catalog: Catalog, committer: ThreadPoolExecutor | None) -> _Pending:
        """Start the transaction (in ``committer`` when given, else here and now)."""
        kwargs: dict[str, Any] = {
            "embedded": self.records,
            "failed": self.failed,
            "touched": self.touched,
            "captions": self.captions,
            "hashed": self.hashed,
        }
        if committer is not None:
            future = committer.submit(catalog.apply, **kwargs)
        else:
            future = Future()
            future.set_result(catalog.apply(**kwargs))
        paths = frozenset([r.stat.path for r in self.records] + [f.stat.path for f in self.failed])
        return _Pending(future, self.size, self.tally, paths, {r.content_hash: r.vector for r in self.records})


@dataclass
class _Pending:
    """A batch whose transaction may still be running: what it will have written once it commits."""

    future: Future  # catalog.apply's generation
    size: int
    tally: Tally
    paths: frozenset[str]  # rows it inserts or rewrites
    vectors: dict[str, bytes]  # content hash -> vector of the rows it writes as indexed


def _prepare(
    batch: list[Read],
    plan: Plan,
    encoder: Encoder,
    catalog: Catalog,
    tokens: TokenCache | None,
    pending: _Pending | None,
) -> _Writes:
    """Embed what needs it: copies of known bytes reuse their vector, the rest is encoded."""
    failed = [Failed(r.stat, r.error, r.content_hash) for r in batch if r.error]
    read = [r for r in batch if not r.error]
    touched = [r.stat for r in read if _same_bytes(r, plan)]
    good = [r for r in read if not _same_bytes(r, plan)] if touched else read
    known = _known_vectors({r.content_hash for r in good}, catalog, pending)
    width = 4 * int(getattr(encoder, "dim", 0) or 0)  # bytes of a sound vector (a test fake may not say)
    known = {h: v for h, v in known.items() if not width or len(v) == width}  # never copy a damaged vector
    vectors = {
        r.stat.path: known[r.content_hash] for r in good if r.content_hash in known
    }  # same bytes elsewhere: no need to encode
    fresh = [r for r in good if r.stat.path not in vectors]
    vectors.update({r.stat.path: r.vector for r in fresh if r.vector})  # embedded by a worker
    gridded = [r for r in fresh if r.vector and r.grid]
    if tokens is not None and gridded:  # a worker's token grids, durable before the commit like local ones
        tokens.append(
            [r.content_hash for r in gridded],
            np.stack([np.frombuffer(r.grid, "<f2").reshape(tokens.shape) for r in gridded]),
        )
    encode = [r for r in fresh if not r.vector]
    if encode:
        pixels = encoder.stack([r.pixels for r in encode])
        if tokens is None:
            embedded = encoder.encode_images(pixels)  # (B, D)
        else:  # vectors and token grids from one forward pass; tokens durable before the commit
            from retrieval.models.features import image_tokens

            embedded, grids = image_tokens(encoder, pixels)  # type: ignore[arg-type]
            tokens.append([r.content_hash for r in encode], grids)
        for r, row in zip(encode, np.asarray(embedded, dtype="<f4")):
            vectors[r.stat.path] = row.tobytes()
    records = [Embedded(r.stat, r.content_hash, r.meta, vectors[r.stat.path]) for r in good]  # type: ignore[arg-type]
    # A file whose timestamp alone changed keeps its vector; its sidecars are read again if they
    # changed too, in this run (else they would be seen only by the next one).
    recaption = [r for r in read if _same_bytes(r, plan) and _sidecars_changed(r.stat.path, plan)]
    found = {r.stat.path: _captions_of(r, plan) for r in (*good, *recaption)}
    # A new image with no captions has none to replace: skipping it saves the catalog two
    # statements per image (most of a batch's commit time at GPU ingest rates).
    found = {p: texts for p, texts in found.items() if texts or p in plan.previous or plan.sidecar_mtimes.get(p)}
    captions = embed_captions(found, plan, encoder)
    captions.update({f.stat.path: Captions(0) for f in failed})  # an unreadable file loses its captions
    updated = sum(r.stat.path in plan.previous for r in good)
    tally = Tally(len(good) - updated, updated, len(touched), [(f.stat.path, f.error) for f in failed], len(fresh))
    return _Writes(len(batch), records, failed, touched, captions, tally, _missing_phashes(read, plan))


def _missing_phashes(read: list[Read], plan: Plan) -> dict[str, int]:
    """Perceptual hashes of same-bytes files whose rows have none (catalogs from before schema 2)."""
    found: dict[str, int] = {}
    for r in read:
        old = plan.previous.get(r.stat.path)
        phash = getattr(r.meta, "phash", None)
        if old is not None and old.phash is None and phash is not None and _same_bytes(r, plan):
            found[r.stat.path] = phash
    return found


def _known_vectors(hashes: set[str], catalog: Catalog, pending: _Pending | None) -> dict[str, bytes]:
    """Content hash -> vector of an indexed row with those bytes, as the catalog holds them
    once ``pending`` (the batch whose transaction may be running now) has committed."""
    known = catalog.by_hash(hashes)  # may see the catalog from before or after `pending`
    if pending is not None:
        if any(row.path in pending.paths and h not in pending.vectors for h, row in known.items()):
            pending.future.result()  # rare (a re-read file whose bytes changed): ask once it is in
            return _known_vectors(hashes, catalog, None)
        known = {h: row for h, row in known.items() if row.path not in pending.paths}
    stored = catalog.vectors_for([row.id for row in known.values()])
    vectors = {h: stored[row.id] for h, row in known.items() if row.id in stored}
    if pending is not None:
        vectors.update({h: v for h, v in pending.vectors.items() if h in hashes and h not in vectors})
    return vectors


def _sidecars_changed(path: str, plan: Plan) -> bool:
    """Whether the sidecars of ``path`` (a catalogued file) differ from when its captions were read."""
    return plan.sidecar_mtimes.get(path, 0) != plan.previous[path].captions_mtime_ns


def _captions_of(item: Read, plan: Plan) -> list[str]:
    """The image's captions; sidecar files are looked for only where the scan saw one."""
    description = item.meta.description  # type: ignore[attr-defined]
    return sidecar_captions(item.stat.path, description, files=bool(plan.sidecar_mtimes.get(item.stat.path)))


def embed_captions(found: dict[str, list[str]], plan: Plan, encoder: Encoder) -> dict[str, Captions]:
    """Embed each image's caption texts (``path -> texts``) in one encoder call; note the sidecar mtime read."""
    bodies = [body for texts in found.values() for body in texts]
    vectors = iter(np.asarray(encoder.encode_texts(bodies), dtype="<f4")) if bodies else iter(())
    return {
        path: Captions(plan.sidecar_mtimes.get(path, 0), tuple((b, next(vectors).tobytes()) for b in texts))
        for path, texts in found.items()
    }


def _same_bytes(item: Read, plan: Plan) -> bool:
    """A changed file whose content hash did not change (only its timestamp did)."""
    old = plan.previous.get(item.stat.path)
    if item.stat.path in plan.reembed:  # same bytes, but the stored vector is damaged
        return False
    return old is not None and old.state != FAILED and old.content_hash == item.content_hash
