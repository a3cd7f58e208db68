"""The public library API: open a library, index folders, search by text or image.

from retrieval import Library
with Library.open("~/photos-index", model="ViT-B-32") as lib:
    report = lib.index(["~/Pictures"])
    for hit in lib.search(text="a man riding a horse", k=5):
        print(hit.rank, hit.score, hit.path)
"""

from __future__ import annotations

import contextlib
import functools
import logging
import os
import shutil
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Concatenate, ParamSpec, TypeVar

import numpy as np

from index.atomic import remove_stale_temps
from index.config import remember_config
from index.deps import check_faiss, installed_version, require_torch
from index.errors import CatalogMismatchError, CorruptFileError, XmrError
from index.keywords import parse_query, tokens
from index.layout import LibraryLayout, default_library_dir
from index.lock import WriteLock
from index.manifest import Manifest, ModelIdentity, read_manifest
from index.query_cache import QueryVectorCache
from index.quick_catalog import open_catalog
from index.records import PHOTOS, VIDEOS, ImageFilter
from index.scan_settings import load_excludes, save_excludes
from index.schema_names import IMAGES, TEXTS
from index.store import IndexConfig, VectorStore
from index.tokens import TokenCache
from index.vectors import Neighbors
from retrieval.arguments import check_min_score, check_path, check_query_vector, check_text_option, index_roots
from retrieval.errors import (
    ArgumentTypeError,
    DeviceError,
    ItemNotFoundError,
    LibraryClosedError,
    ModelMismatchError,
    QueryError,
)
from retrieval.models.identity import open_manifest, rebind_empty, save_new
from retrieval.models.runtime import FOR_IMAGES, FOR_QUERIES, open_encoder, pick_runtime
from retrieval.models.specs import ModelSpec
from retrieval.rerank.base import DEFAULT_RERANK_K
from retrieval.results import DuplicateReport, Hit, IndexReport, LibraryInfo, Term, TextHit, TextReport
from retrieval.search.framing import FramedQuery, frame_shapes, merge_neighbors
from retrieval.search.gpu_search import search_hook
from retrieval.search.hits import media_hits, page_hits, text_hits, word_hits
from retrieval.search.known_vectors import LibraryVectors
from retrieval.search.query_vector import (
    check_paging,
    embed_image,
    embed_terms,
    embed_text,
    framed_terms,
    query_vector,
)
from retrieval.search.selections import SelectionCache

if TYPE_CHECKING:
    from PIL import Image

    from index.catalog import Catalog
    from retrieval.ingest.commit import Progress
    from retrieval.ingest.config import IngestConfig
    from retrieval.ingest.distributed import RayConfig
    from retrieval.ingest.ocr import OcrConfig
    from retrieval.ingest.ocr_pass import OcrProgress
    from retrieval.ingest.scan import ScanConfig
    from retrieval.models.encoder import Encoder
    from retrieval.rerank.base import Reranker
    from retrieval.search.duplicates import DuplicateConfig

_P = ParamSpec("_P")
_R = TypeVar("_R")


def _while_open(method: Callable[Concatenate[Library, _P], _R]) -> Callable[Concatenate[Library, _P], _R]:
    """Refuse a call on a closed library (its catalog engine would quietly reconnect)."""

    @functools.wraps(method)
    def run(self: Library, *args: _P.args, **kwargs: _P.kwargs) -> _R:
        if self.closed:
            raise LibraryClosedError(
                f"the library at {self.layout.root} was closed; open it again (Library.open) to use it."
            )
        return method(self, *args, **kwargs)

    return run


log = logging.getLogger(__name__)


class Library:
    """A directory holding a catalog, vector indexes and a manifest. Thread-safe for searches."""

    def __init__(
        self,
        layout: LibraryLayout,
        manifest: Manifest,
        catalog: Catalog,
        device: str,
        encoder: Encoder | None,
        index_config: IndexConfig,
        runtime: str = "auto",
        quick_start: bool = False,
    ) -> None:
        self.layout = layout
        self.manifest = manifest
        self.catalog = catalog
        self.device = device
        self.closed = False  # set by close(); every later call raises LibraryClosedError
        self.created = False  # made by the open that returned it (see discard())
        self._made_root = False  # that open also made its directory
        self.runtime = runtime
        self.quick_start = quick_start  # open onnxruntime sessions for start-up time, not throughput
        self._given = encoder  # a ready encoder handed to open(): used for everything
        self._encoders: dict[str, Encoder] = {}  # runtime -> the library's model on it, loaded on first use
        self._encoder_lock = threading.Lock()
        self._selections = SelectionCache(catalog)  # filter -> allowed ids
        # Texts searched before and unchanged indexed files are queried without loading the model.
        self.known = LibraryVectors(
            catalog, QueryVectorCache(layout.query_cache, _query_cache_key(manifest.model), manifest.model.embed_dim)
        )
        self.images = VectorStore(layout.image_vectors, catalog, IMAGES, manifest.model.embed_dim, index_config)
        self.images.load()
        self.texts = VectorStore(layout.text_vectors, catalog, TEXTS, manifest.model.embed_dim, index_config)
        self.texts.load()
        # A CUDA torch searches large exact indexes on the GPU when faiss cannot (decided lazily).
        self.images.accelerate = search_hook(device)
        self.texts.accelerate = search_hook(device)
        self._save_repaired()

    def _save_repaired(self) -> None:
        """Save an index snapshot that opening found damaged (and rebuilt from the catalog), when
        no index run holds the write lock: otherwise every open would rebuild it again. Best
        effort: a read-only folder or a full disk leaves it for the next ``xmr index``."""
        damaged = [store for store in (self.images, self.texts) if store.damaged]
        if not damaged or self.catalog.read_only:
            return
        lock = WriteLock(self.layout.lock)
        try:
            if not lock.acquire():
                return  # an index run is writing: it saves the index itself
        except XmrError as exc:
            log.info("damaged index not saved now (%s)", exc)
            return
        try:
            for store in damaged:
                store.persist(retrain="never")
        except (OSError, XmrError) as exc:
            log.warning("the rebuilt %s index was not saved (%s); the next xmr index saves it", store.corpus, exc)
        finally:
            lock.release()

    # ---- opening ------------------------------------------------------------------------

    @classmethod
    def open(
        cls,
        directory: str | Path | None = None,
        *,
        model: str | ModelSpec | Encoder | None = None,
        pretrained: str | None = None,
        catalog_url: str = "",
        device: str = "auto",
        index_config: IndexConfig | None = None,
        create: bool = True,
        runtime: str = "auto",
        quick_start: bool = False,
    ) -> Library:
        """Open the library in ``directory`` (default: ``$XMR_LIBRARY`` or the XDG data dir).

        Args:
            model: open_clip name, ``local-dir:PATH``, folder, a ``ModelSpec`` or a ready encoder.
                ``None`` uses the model the library was built with (or the default for a new one).
            pretrained: tag or weights file going with an architecture name.
            catalog_url: SQLAlchemy URL of the catalog (default: SQLite inside the directory).
            device: "auto", "cpu", "cuda" or "mps".
            index_config: how vectors are indexed; remembered in the library (index.json) for
                later opens that give none. ``None``: the remembered one, else the default.
            create: make a new library if none exists (else raise LibraryNotFoundError).
            runtime: "auto", "onnx" or "torch" (see :mod:`retrieval.models.runtime`): "auto" runs
                queries on onnxruntime, and images there too unless a GPU is there for torch.
            quick_start: this process runs a few queries and exits (the command-line search):
                onnxruntime opens each tower without pre-packing its weights, ~0.2-0.3 s sooner
                for ViT-B-32, and each run is slower; a SQLite catalog's reads run on sqlite3
                until something else is asked of it (:mod:`index.quick_catalog`: no SQLAlchemy
                import, ~0.3 s). Batches and servers: leave it False.

        Raises:
            MissingDependencyError: faiss is not installed.
            LibraryNotFoundError: no library there and ``create`` is False.
            ModelMismatchError: ``model`` is not the model the library was built with.
            ModelNotFoundError, WeightsUnavailableError: the model cannot be loaded.
            DeviceError: an unknown runtime.
            CatalogMismatchError: ``catalog_url`` is not the catalog the library was made with,
                or (for a new library) already holds another library's catalog.
            CatalogUnavailableError, CorruptFileError: the catalog cannot be opened (a new
                library is then not created).
        """
        _check_open_arguments(directory, model, pretrained, catalog_url, device, create)
        check_faiss()  # without importing it: an exact index searches with numpy alone
        pick_runtime(runtime)  # an unknown runtime fails here, not at the first query
        layout = LibraryLayout((Path(directory).expanduser() if directory else default_library_dir()).resolve())
        encoder = None if model is None or isinstance(model, (str, ModelSpec)) else model
        try:
            manifest, new = open_manifest(layout, model, encoder, pretrained, catalog_url, create)
        except ModelMismatchError as mismatch:
            manifest, new = _rebind_if_never_written(layout, model, encoder, pretrained, catalog_url, create, mismatch)
        made_root = new and not layout.root.exists()
        if new:
            layout.root.mkdir(parents=True, exist_ok=True)
        try:
            catalog = open_catalog(
                layout.catalog_url(catalog_url or manifest.catalog_url), quick=quick_start and not new
            )
            if new and catalog.generation() > 0:
                catalog.close()
                raise CatalogMismatchError(_catalog_in_use(layout, catalog.url))
        except XmrError:
            if made_root:  # a bad catalog URL leaves no half-made library behind
                shutil.rmtree(layout.root, ignore_errors=True)
            raise
        if new:
            save_new(layout, manifest)
        else:
            _check_catalog_not_emptied(layout, catalog)
        config = remember_config(layout.index_config, index_config)
        library = cls(layout, manifest, catalog, device, encoder, config, runtime, quick_start)
        library.created, library._made_root = new, made_root
        return library

    def close(self) -> None:
        """Close the catalog's connections and let go of the model; every later call raises
        LibraryClosedError. Closing again does nothing."""
        if self.closed:
            return
        self.closed = True
        self.catalog.close()
        with self._encoder_lock:
            self._encoders.clear()

    def discard(self) -> bool:
        """Close the library and delete it, when this open made it and nothing was ever written
        to its catalog (a first index run that found no image): no empty library is left
        behind. Returns whether it was deleted; a library with any row is never touched.
        """
        if not self.created or self.catalog.generation() > 0:
            return False
        self.close()
        for path in self.layout.files():
            with contextlib.suppress(FileNotFoundError):
                path.unlink()
        if self._made_root:
            with contextlib.suppress(OSError):  # only when empty: a file of someone else's stays
                self.layout.root.rmdir()
        return True

    def __enter__(self) -> Library:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def query_cache(self) -> QueryVectorCache:
        """The vectors of text queries searched before (``queries.sqlite``)."""
        return self.known.cache

    @property
    def identity(self) -> ModelIdentity:
        return self.manifest.model

    @property
    def encoder(self) -> Encoder:
        """The library's encoder for queries and texts, loaded once on first use."""
        return self.encoder_for(FOR_QUERIES)

    def encoder_for(self, purpose: str, runtime: str = "") -> Encoder:
        """The library's model on the runtime ``pick_runtime`` picks for ``purpose`` (``FOR_QUERIES``
        or ``FOR_IMAGES``), or on ``runtime`` when given; each runtime's encoder loads once.

        Raises:
            ModelMismatchError: the model files changed since the library was built.
            MissingDependencyError, ExportError, ModelNotFoundError, WeightsUnavailableError: see
                :func:`retrieval.models.runtime.open_encoder`.
        """
        if self.closed:
            raise LibraryClosedError(f"the library at {self.layout.root} was closed; open it again (Library.open).")
        if self._given is not None:
            return self._given
        chosen = pick_runtime(runtime or self.runtime, self.device, purpose)
        with self._encoder_lock:
            if chosen not in self._encoders:
                model = self.identity
                log.info("loading the model %s (device %s, runtime %s)", model.label(), self.device, chosen)
                encoder = open_encoder(
                    ModelSpec(model.spec, model.spec_pretrained),
                    self.device,
                    chosen,
                    purpose,
                    prepack=not self.quick_start,
                )
                if not model.same_model(encoder.identity):  # e.g. weights retrained in place
                    raise ModelMismatchError(
                        f"the model files of the library at {self.layout.root} changed since it was built: "
                        f"built with {model.label()}, the files now hold {encoder.identity.label()}. "
                        "Restore the original weights, or index into a new library (--library DIR) "
                        "to use the new ones; mixing the two would make every search wrong."
                    )
                self._encoders[chosen] = encoder
            return self._encoders[chosen]

    def _loading(self, purpose: str, runtime: str, stage: Callable[[str], None]) -> Encoder:
        """:meth:`encoder_for`, calling ``stage("loading the model")`` first when it is not loaded yet."""
        if self._given is None and pick_runtime(runtime or self.runtime, self.device, purpose) not in self._encoders:
            stage("loading the model")
        return self.encoder_for(purpose, runtime)

    def _token_runtime(self, cache_tokens: bool) -> str:
        """ "torch" when this run fills a token cache (only torch gives image tokens), else ""."""
        if not cache_tokens and not TokenCache.exists(self.layout.root):
            return ""
        if self.runtime == "onnx":
            raise DeviceError(
                f"the library at {self.layout.root} keeps a token cache, which only the torch runtime fills; "
                "index it with --runtime torch (or auto)."
            )
        return "torch"

    # ---- indexing -----------------------------------------------------------------------

    @_while_open
    def index(
        self,
        paths: str | Path | bytes | Sequence[str | Path | bytes],
        *,
        config: IngestConfig | None = None,
        on_progress: Callable[[Progress], None] | None = None,
        on_plan: Callable[[int, int], None] | None = None,
        on_stage: Callable[[str], None] | None = None,
        ray: RayConfig | None = None,
        cache_tokens: bool = False,
        exclude: Sequence[str] = (),
        follow_symlinks: bool = True,
        vanished_means_deleted: bool = False,
        persist: bool = True,
        ocr: bool | None = None,
        ocr_config: OcrConfig | None = None,
        on_ocr_progress: Callable[[OcrProgress], None] | None = None,
    ) -> IndexReport:
        """Index image files under ``paths`` incrementally; see :class:`IndexReport`.

        ``config`` says how files are read and embedded (None: :class:`IngestConfig`'s defaults).
        Unchanged files are skipped, changed ones re-embedded, vanished ones removed, moved
        ones keep their vector. Unreadable files are recorded and reported, never fatal;
        files of kinds xmr does not read are counted by kind (``IndexReport.not_read``).
        ``on_stage(name)`` is called as each stage starts: "scanning", "comparing with the
        library", "loading the model" (only when it is not loaded yet), "embedding".
        ``on_plan(to_read, unchanged)`` is called once before reading starts. With ``ray``,
        Ray actors decode and embed the files (see :mod:`retrieval.ingest.distributed`); planning,
        commits and their guarantees stay here. ``cache_tokens`` starts a token cache (each
        image's encoder tokens on disk, for reranking without decoding); once a library has
        one, every later run fills it. ``exclude`` adds gitignore patterns to those the library
        remembers (see :meth:`exclusions`); files already in the library that they cover leave
        it. ``follow_symlinks=False`` reports links to folders instead of walking them.
        ``vanished_means_deleted``: a path in ``paths`` that does not exist was deleted (the
        watcher's events), so its images leave; otherwise they are kept (an unplugged drive).
        ``persist=False`` leaves the index snapshots as they were (the catalog holds every
        change, and opening or :meth:`persist_index` brings them up to date): a watcher
        committing small batches then does not rewrite the whole index file for each.
        ``ocr`` turns reading the text in photos on or off (remembered by the library; None:
        as it was told last, else off): OCR threads beside the encoder read new and changed
        files and indexed files not read yet (see :mod:`retrieval.ingest.ocr_pass`), reporting
        through ``on_ocr_progress``.

        Raises:
            ArgumentTypeError: ``paths`` is not a path or a list of paths.
            LibraryBusyError: another process is indexing this library.
            ExcludePatternError: an exclude pattern gitignore syntax cannot read.
            MissingDependencyError: ``ocr`` without the ``[ocr]`` extra, ``ray`` without Ray.
            ModelMismatchError, DistributedIndexError: with ``ray`` only.
        """
        from retrieval.images.decode import image_extensions
        from retrieval.ingest.config import IngestConfig
        from retrieval.ingest.ocr_pass import start_ocr_pass
        from retrieval.ingest.pipeline import run_plan
        from retrieval.ingest.scan import make_plan, scan
        from retrieval.ingest.videos import index_videos, split_videos
        from retrieval.video.formats import VIDEO_EXTENSIONS, VIDEO_HINT, video_available

        config = config or IngestConfig()
        roots = index_roots(paths)
        stage = on_stage or (lambda name: None)
        start = time.perf_counter()
        with self._writing():
            stage("scanning")
            rules = replace(self._scan_config(exclude, follow_symlinks), vanished_roots_deleted=vanished_means_deleted)
            found = scan(roots, image_extensions() | VIDEO_EXTENSIONS, rules)
            stage("comparing with the library")
            plan = make_plan(found, self.catalog, retry_failed=config.retry_failed, dim=self.identity.embed_dim)
            videos = split_videos(plan, video_available())  # moves and removals of videos stay in the plan
            log.info(
                "plan: %d to read, %d videos, %d unchanged, %d moved, %d removed",
                len(plan.todo),
                len(videos.todo),
                plan.unchanged,
                len(plan.moved),
                len(plan.removed),
            )
            if on_plan:
                on_plan(len(plan.todo) + len(videos.todo), plan.unchanged)
            reader = start_ocr_pass(self.catalog, found, plan, ocr, ocr_config, config.retry_failed, on_ocr_progress)
            runtime = ""  # the library's; torch when this run fills a token cache (videos then share it)
            try:
                work = bool(plan.todo or plan.recaption)
                if ray is not None:
                    from retrieval.ingest.distributed import run_plan_ray

                    # A token cache's grid shape comes from the model, so the driver loads it then.
                    tokens = self._token_cache(create=cache_tokens) if plan.todo else None
                    ray = replace(ray, runtime=ray.runtime if ray.runtime != "auto" else self.runtime)
                    if work:
                        stage("embedding")
                    tally = run_plan_ray(
                        plan, self.identity, lambda: self.encoder, self.catalog, config, ray, on_progress, tokens
                    )
                else:
                    runtime = self._token_runtime(cache_tokens)
                    encoder = self._loading(FOR_IMAGES, runtime, stage) if work else None
                    if work:
                        stage("embedding")
                    tokens = self._token_cache(create=cache_tokens) if plan.todo else None
                    tally = run_plan(plan, encoder, self.catalog, config, on_progress, tokens)  # type: ignore[arg-type]
                done = (
                    tally.added + tally.updated + tally.touched + len(tally.failed),
                    len(plan.todo),
                    len(tally.failed),
                )
                seen = (
                    index_videos(videos, self.encoder_for(FOR_IMAGES, runtime), self.catalog, config, on_progress, done)
                    if videos.todo
                    else None
                )
                read = reader.finish() if reader is not None else None
            except BaseException as exc:
                if reader is not None:  # interrupted or failed: stop reading text, keep what was committed
                    reader.cancel()
                    reader.join()
                if persist:
                    self._persist_after(exc)  # also after an interrupt: what was committed is kept
                raise
            if persist:
                self.images.persist()
                self.texts.persist()  # sidecar captions
            if ray is None and work:
                _prepare_text_tower(encoder)
            if read is not None:
                self.catalog.prune_ocr()  # text of bytes no file has any more (edited or deleted)
        failures = (
            tuple(found.errors)
            + tuple(found.skipped)
            + tuple(tally.failed)
            + (tuple(seen.failed) if seen else ())
            + (tuple(read.failed) if read else ())
        )
        return IndexReport(
            added=tally.added + (seen.added if seen else 0),
            updated=tally.updated + (seen.updated + seen.resumed if seen else 0),
            moved=len(plan.moved),
            removed=len(plan.removed),
            unchanged=plan.unchanged + tally.touched + (seen.touched if seen else 0),
            failed=len(failures),
            failures=failures,
            encoded=tally.encoded + (seen.encoded if seen else 0),
            seconds=time.perf_counter() - start,
            not_read=found.not_read,
            missing=found.missing,
            excluded=found.excluded,
            excluded_removed=tuple(plan.excluded_paths),
            links_skipped=found.links_skipped,
            raw_skipped=found.raw_skipped,
            rehashed=plan.rehash,
            ocr_read=read.read if read else 0,
            ocr_failed=len(read.failed) if read else 0,
            videos=len(videos.todo),
            moments=seen.moments if seen else 0,
            skipped=tuple(videos.skipped),
            skipped_reason=VIDEO_HINT if videos.skipped else "",
        )

    @_while_open
    def persist_index(self) -> None:
        """Bring the vector index snapshots up to date with the catalog and write them (under the
        write lock; after index runs with ``persist=False``).

        Raises:
            LibraryBusyError: another process is writing to this library.
        """
        with self._writing():
            self.images.persist()
            self.texts.persist()

    @_while_open
    def exclusions(self) -> tuple[str, ...]:
        """The ``--exclude`` patterns this library remembers (gitignore syntax; see
        :mod:`retrieval.ingest.exclusions`); the defaults and ``.xmrignore`` files apply too."""
        return load_excludes(self.layout.scan_settings)

    @_while_open
    def add_exclusions(self, patterns: Sequence[str]) -> tuple[str, ...]:
        """Remember more ``--exclude`` patterns (they apply from the next index run); return them all.

        Raises:
            ExcludePatternError: a pattern gitignore syntax cannot read (nothing is saved).
            LibraryBusyError: another process is writing to this library.
        """
        with self._writing():
            return self._scan_config(patterns, True).exclude

    @_while_open
    def forget_exclusions(self, patterns: Sequence[str]) -> tuple[str, ...]:
        """Stop remembering ``patterns`` (as given to :meth:`index`); return those still remembered.
        Files they kept out come in with the next index run.

        Raises:
            LibraryBusyError: another process is writing to this library.
        """
        from retrieval.ingest.exclusions import normalize_pattern

        with self._writing():
            gone = {normalize_pattern(p) for p in patterns}
            kept = [p for p in self.exclusions() if p not in gone]
            return save_excludes(self.layout.scan_settings, kept)

    def _scan_config(self, exclude: Sequence[str], follow_symlinks: bool) -> ScanConfig:
        """The walk's settings: remembered patterns plus ``exclude`` (remembered from now on, once
        they parse). Called under the write lock."""
        from retrieval.ingest.exclusions import ExclusionRules, normalize_pattern
        from retrieval.ingest.scan import ScanConfig

        remembered = self.exclusions()
        patterns = tuple(dict.fromkeys((*remembered, *(normalize_pattern(p) for p in exclude if p.strip()))))
        ExclusionRules(patterns)  # a pattern that does not parse fails here, before it is saved
        if patterns != remembered:
            save_excludes(self.layout.scan_settings, patterns)
        return ScanConfig(exclude=patterns, follow_symlinks=follow_symlinks)

    def _persist_after(self, exc: BaseException) -> None:
        """Save the index snapshots after a run stopped on ``exc``, never hiding ``exc``.

        The catalog already holds every committed batch, so a snapshot that cannot be
        written now (the same full disk, say) is only logged: the next open catches up.
        """
        for store in (self.images, self.texts):
            try:
                store.persist()
            except Exception as second:  # noqa: BLE001  (the first error is the one to report)
                log.warning("the %s index was not saved after %s: %s", store.corpus, type(exc).__name__, second)

    @contextlib.contextmanager
    def _writing(self) -> Iterator[None]:
        """Hold the write lock, remove the temp files of killed writers, and make sure the
        library still belongs to this model.

        Another process may have given a library that never got a vector to another model
        between this open and the lock (see :func:`_rebind_if_never_written`).
        """
        with WriteLock(self.layout.lock):
            remove_stale_temps(self.layout.root)  # snapshots and manifests half-written by runs that were killed
            on_disk = read_manifest(self.layout.root)
            if on_disk is not None and not on_disk.model.same_model(self.identity):
                raise ModelMismatchError(
                    f"the library at {self.layout.root} was given to {on_disk.model.label()} by another "
                    f"xmr process after this one opened it with {self.identity.label()}; nothing was written. "
                    "Open it again (leave out --model to use its model now)."
                )
            yield

    def _token_cache(self, create: bool) -> TokenCache | None:
        """The library's token cache (created for this encoder when asked), or None."""
        if not create and not TokenCache.exists(self.layout.root):
            return None
        from retrieval.models.features import token_shape

        shape = token_shape(self.encoder_for(FOR_IMAGES, "torch"))  # type: ignore[arg-type]
        return TokenCache.create(self.layout.root, shape.image, shape.image_width, self.identity.label())

    # ---- the text corpus ----------------------------------------------------------------

    @_while_open
    def add_texts(
        self,
        path: str | Path,
        batch_size: int = 64,
        *,
        on_stage: Callable[[str], None] | None = None,
        on_progress: Callable[[int, int], None] | None = None,
    ) -> TextReport:
        """Embed the texts of a .txt, pairs .jsonl, .csv or .tsv file into the text corpus.

        Texts already added from the same file are skipped, so re-adding adds nothing twice.
        A table's image column may name an absolute path, a path next to the table or a
        path inside the library's folders (see :mod:`retrieval.ingest.texts`).
        ``on_stage(name)`` is called with "loading the model" (when it is not loaded yet)
        and "embedding"; ``on_progress(done, total)`` after each batch of new texts.

        Raises:
            ArgumentTypeError: ``path`` is not a path.
            PairsFormatError: the file cannot be read (the message names the line).
            LibraryBusyError: another process is writing to this library.
        """
        from retrieval.ingest.texts import IndexedPaths, read_texts

        check_path(path, "add_texts(path)")
        source = str(Path(path).expanduser().resolve())
        items = read_texts(source, IndexedPaths(self.catalog.iter_paths))
        stage = on_stage or (lambda name: None)
        with self._writing():
            known = self.catalog.text_keys(source)
            fresh = [item for item in items if item not in known]
            encoder = self._loading(FOR_QUERIES, "", stage) if fresh else None
            if fresh:
                stage("embedding")
            for start in range(0, len(fresh), batch_size):  # a transaction per batch: resumable
                chunk = fresh[start : start + batch_size]
                assert encoder is not None  # fresh is not empty here
                vectors = encoder.encode_texts([body for body, _ in chunk])  # (B, D)
                self.catalog.add_texts(source, [(b, i, v.astype("<f4").tobytes()) for (b, i), v in zip(chunk, vectors)])
                if on_progress:
                    on_progress(start + len(chunk), len(fresh))
            self.texts.persist()
        unlinked = sum(1 for _, image in items if image is not None and not os.path.exists(image))
        return TextReport(source=source, added=len(fresh), skipped=len(items) - len(fresh), missing_images=unlinked)

    @_while_open
    def remove_texts(self, source: str | Path) -> int:
        """Remove every text added from ``source`` (a path as given to :meth:`add_texts`).

        Raises:
            ArgumentTypeError: ``source`` is not a path.
        """
        check_path(source, "remove_texts(source)")
        with self._writing():
            removed = self.catalog.remove_texts(str(Path(source).expanduser().resolve()))
            self.texts.persist()
        return removed

    @_while_open
    def search_texts(
        self,
        text: str | None = None,
        *,
        image: str | Path | Image.Image | None = None,
        k: int = 10,
        terms: Sequence[Term] = (),
        offset: int = 0,
        min_score: float | None = None,
        reranker: Reranker | None = None,
        rerank_k: int = DEFAULT_RERANK_K,
    ) -> list[TextHit]:
        """Rank the text corpus by texts and images (image-to-text: captioning by retrieval).

        With ``reranker`` (image queries only), the dual top ``max(rerank_k, offset + k)``
        texts are rescored; see :mod:`retrieval.rerank.search` for the scores. Everything
        after the query text is keyword-only (``search_texts("a cat", k=2)``).
        """
        min_score = check_min_score(min_score)
        query = self._query(text, image, terms, k, offset)
        pool = k + offset if reranker is None else max(rerank_k, k + offset)
        self.texts.refresh()
        (found,) = self.texts.search(query.reshape(1, -1), pool)
        out = text_hits(found, self.catalog.texts(found.ids.tolist()))
        if reranker is not None:
            if image is None or text is not None or terms:
                raise QueryError(
                    "reranking texts needs one query image and nothing else; drop --reranker for text-to-text search."
                )
            from retrieval.rerank.base import ImageRef
            from retrieval.rerank.search import rerank_text_hits

            pil = image if not isinstance(image, (str, Path)) else None
            ref = ImageRef(path=str(image) if pil is None else None, image=pil)
            return rerank_text_hits(reranker, ref, out, k, offset, min_score)
        return [h for h in out[offset:] if min_score is None or h.score >= min_score]

    # ---- searching ----------------------------------------------------------------------

    @_while_open
    def embed_text(self, text: str) -> np.ndarray:
        """The unit vector ``(dim,)`` of a text query."""
        return embed_text(lambda: self.encoder, text, self.known)

    @_while_open
    def embed_image(self, image: str | Path | Image.Image) -> np.ndarray:
        """The unit vector ``(dim,)`` of an image (a path or a PIL image)."""
        return embed_image(lambda: self.encoder, image, self.known)

    @_while_open
    def search(
        self,
        text: str | None = None,
        *,
        image: str | Path | Image.Image | None = None,
        k: int = 10,
        terms: Sequence[Term] = (),
        where: ImageFilter = ImageFilter(),
        offset: int = 0,
        min_score: float | None = None,
        reranker: Reranker | None = None,
        rerank_k: int = DEFAULT_RERANK_K,
        mode: str = "auto",
        sort: str = "relevance",
        per_video: bool = True,
        video_framing: bool = True,
    ) -> list[Hit]:
        """Rank the library's photos and videos by texts and example images; best first.

        Everything after the query text is keyword-only: ``search("a cat", k=2)``.

        Args:
            text, image: a single query (each counts as a term of weight 1).
            terms: more query terms; the query is the renormalised weighted sum of their
                unit vectors, so a negative weight steers away from a term.
            where: only images passing this filter (applied inside the vector search, so
                ``k`` hits come back whenever ``k`` matching images exist).
            offset: skip this many hits first (paging: ranks continue from offset + 1).
            min_score: drop hits scoring below this cosine similarity (with a reranker: below
                this match probability).
            reranker: rescore the dual top ``max(rerank_k, offset + k)`` against the query's
                one text (see :mod:`retrieval.rerank.search`); from :meth:`load_reranker`.
                Rerankers score photos: with one, videos are left out.
            mode: "semantic" (the encoder), "keyword" (the words in the images' OCR text, file
                and folder names, captions and keywords; loads no model), "hybrid" (both rankings
                fused) or "auto": hybrid when some image's own text (OCR, captions, keywords)
                holds a word of the query and no reranker is given; else semantic, scores as
                before. See :mod:`retrieval.search.keyword` for scores and ``min_score`` in each
                mode, and for videos (ranked by their file's words, one hit each).
            sort: "relevance", or "date" / "-date": the hits that passed ``k`` and ``min_score``
                by capture time (else modification time), oldest / newest first.
            per_video: a video is one hit at its best moment, listing its other matching
                moments (``Hit.moments``); False makes every moment a hit of its own (semantic
                search only: "auto" is semantic then).
            video_framing: with example images, a video moment also scores against the query
                with each image cropped at its centre to the shape of the moment's video (what a
                slideshow or a video filling its frame with the picture shows); the moment takes
                the better cosine, photos keep the plain one (see :mod:`retrieval.search.framing`).
                False: the plain query only.

        Hits carry ``match``: the OCR line (with its box), caption, keyword or name holding the
        query's words or a ``where.contains`` text, when one does.

        Raises:
            QueryError: no query term, ``k`` < 1, ``offset`` < 0, terms that cancel out, an
                unreadable query image, a ``min_score`` that is not a number, a reranker with no
                single text to match, an unknown mode or sort, keyword or hybrid mode without words,
                with a reranker or without ``per_video``, or a reranker with ``where.media == "videos"``.
        """
        min_score = check_min_score(min_score)
        _check_query_types(text, image, terms, k, offset)
        words = " ".join(t for t in (text, *(term.text for term in terms if term.weight > 0)) if isinstance(t, str))
        if reranker is None:
            framed: list[FramedQuery] = []
            if mode == "keyword":  # no query vector: the model is not loaded
                _check_query_types(text, image, terms, k, offset)
                query = None
            elif video_framing and where.media != PHOTOS:
                query, framed = self._framed_query(text, image, terms, k, offset)
            else:
                query = self._query(text, image, terms, k, offset)
            return self.search_vector(
                query,
                k,
                where=where,
                offset=offset,
                min_score=min_score,
                words=words,
                mode=mode,
                sort=sort,
                per_video=per_video,
                framed=framed,
            )
        from retrieval.rerank.search import rerank_hits, rerank_text
        from retrieval.search.keyword import pick_mode, sort_hits

        pick_mode(mode, sort, parse_query(words), True, False)  # a reranker takes semantic results only
        if where.media == VIDEOS:
            raise QueryError(
                "rerankers score photos, not video moments; drop --reranker, or search --media all or photos."
            )
        query = self._query(text, image, terms, k, offset)
        rerank_words = rerank_text(text, terms)
        photos = replace(where, media=PHOTOS)
        hits = self.search_vector(query, max(rerank_k, k + offset), where=photos, mode="semantic")
        records = self.catalog.images([h.id for h in hits])
        hashes = {r.id: r.content_hash for r in records.values()}
        hits = rerank_hits(reranker, rerank_words, hits, hashes, k, offset, min_score)
        return sort_hits(self._with_matches(hits, parse_query(words), where), records, sort)

    @_while_open
    def load_reranker(self, spec: str | Path) -> Reranker:
        """Load a reranker for this library: a folder from ``xmr train-reranker`` (checked against
        the library's encoder; reads the token cache when there is one) or ``blip:NAME``.

        Raises:
            MissingDependencyError: torch is not installed (every reranker runs on it).
            RerankerError: nothing loadable there (said before the model loads);
                RerankerMismatchError: trained on another encoder.
        """
        from retrieval.rerank.load import check_reranker_spec, load_for_library

        require_torch("a reranker (--reranker)")  # the first thing to fix, before the folder
        check_reranker_spec(str(spec))
        # Rerankers read the encoder's token features, which only the torch runtime gives.
        return load_for_library(str(spec), self.encoder_for(FOR_QUERIES, "torch"), self.layout.root, self.device)

    def _query(
        self, text: str | None, image: str | Path | Image.Image | None, terms: Sequence[Term], k: int, offset: int
    ) -> np.ndarray:
        """Check paging arguments and embed the query; a lone text or image is a weight-1 term."""
        _check_query_types(text, image, terms, k, offset)
        return query_vector(lambda: self.encoder, self.identity.embed_dim, text, image, terms, k, offset, self.known)

    def _framed_query(
        self, text: str | None, image: str | Path | Image.Image | None, terms: Sequence[Term], k: int, offset: int
    ) -> tuple[np.ndarray, list[FramedQuery]]:
        """The query as :meth:`_query` embeds it and, when it has an image and the library holds
        videos, the query framed like each shape of their frames."""
        _check_query_types(text, image, terms, k, offset)
        check_paging(k, offset)
        given = [*([Term(text=text)] if text is not None else []), *([Term(image=image)] if image is not None else [])]
        given += terms
        shapes = []
        if any(term.image is not None for term in given):
            self.images.refresh()
            shapes = frame_shapes(self._selections.frames(self.images.generation))
        if not shapes:
            return self._query(text, image, terms, k, offset), []
        return framed_terms(lambda: self.encoder, given, self.identity.embed_dim, shapes, self.known)

    @_while_open
    def embed_terms(self, terms: Sequence[Term]) -> np.ndarray:
        """The renormalised weighted sum ``(dim,)`` of the terms' unit vectors."""
        return embed_terms(lambda: self.encoder, terms, self.identity.embed_dim, self.known)

    @_while_open
    def search_vector(
        self,
        query: np.ndarray | None,
        k: int = 10,
        *,
        where: ImageFilter = ImageFilter(),
        offset: int = 0,
        min_score: float | None = None,
        words: str = "",
        mode: str = "semantic",
        sort: str = "relevance",
        per_video: bool = True,
        framed: Sequence[FramedQuery] = (),
    ) -> list[Hit]:
        """Rank photos and videos by a unit query vector ``(dim,)`` and, in keyword or hybrid mode,
        by the keyword ``words`` (``query`` may be None in keyword mode); see :meth:`search`.
        ``framed``: more queries, each scoring only its moments, which take their best score
        (:meth:`search`'s ``video_framing``; ignored in keyword mode).

        Raises:
            QueryError: a vector of the wrong size, with NaN or infinite entries or all zeros,
                or the arguments :meth:`search` refuses.
        """
        from retrieval.search.keyword import (
            HYBRID_POOL,
            any_said,
            fuse,
            fused_hits,
            keyword_hits,
            keyword_ranking,
            pick_mode,
            sort_hits,
        )

        _check_query_types(None, None, (), k, offset)
        check_paging(k, offset)
        min_score = check_min_score(min_score)
        row = None if query is None else check_query_vector(query, self.identity.embed_dim)  # (1, D)
        framed = [replace(f, vector=check_query_vector(f.vector, self.identity.embed_dim)) for f in framed]
        if not isinstance(where, ImageFilter):
            raise QueryError(f"where must be an ImageFilter, not {type(where).__name__}")
        phrases = parse_query(words)
        auto = mode == "auto"
        if not per_video and mode in ("keyword", "hybrid"):
            raise QueryError(
                f"{mode} search ranks files, one hit per video; every moment as a hit (--each-moment) "
                "needs --mode semantic."
            )
        with_docs = per_video and bool(phrases) and self.catalog.keywords.doc_count() > 0
        mode = pick_mode(mode, sort, phrases, False, with_docs)
        if mode != "keyword" and row is None:
            raise QueryError(f"{mode} search needs a query vector; only keyword search works from words alone")
        self.images.refresh()  # pick up what another process indexed meanwhile
        allowed = None  # vector ids (photos, moments) passing ``where``; files: catalog ids (photos, videos)
        if where.active and mode != "keyword":
            allowed = self._selections.allowed(where, self.images.generation)
        files = None
        if where.active and mode != "semantic":
            files = self._selections.allowed(where, self.images.generation, files=True)
        if auto and mode == "hybrid" and not any_said(self.catalog.keywords, phrases, files):
            mode = "semantic"  # auto: cosine scores as ever unless the images' own text (OCR, captions,
            # keywords) holds a word of the query; a file name alone does not switch it
        keyword = keyword_ranking(self.catalog.keywords, phrases, files) if mode != "semantic" else []
        if mode == "semantic":
            assert row is not None  # checked above
            hits = self._semantic(row, k + offset, allowed, per_video, framed)
            hits = page_hits(hits, offset, min_score)
            records = self.catalog.images([h.file_id for h in hits]) if sort != "relevance" else {}
        elif mode == "keyword":
            ranked = keyword[: k + offset]
            records = self.catalog.images([i for i, _, _ in ranked])
            hits = keyword_hits(ranked, word_hits(self.catalog, records, None), offset, min_score)
        else:  # hybrid: the semantic ranking of files (one entry per video) fused with the keyword one
            pool = max(HYBRID_POOL, k + offset)
            assert row is not None  # checked above
            vector = row.reshape(-1)  # (D,)
            found = {h.file_id: h for h in self._semantic(vector.reshape(1, -1), pool, allowed, True, framed)}
            fused = fuse(list(found), keyword[:pool])[: k + offset]
            records = self.catalog.images([i for i, _ in fused])
            found.update(word_hits(self.catalog, {i: r for i, r in records.items() if i not in found}, vector))
            hits = fused_hits(fused, found, keyword[:pool], offset, min_score)
        return sort_hits(self._with_matches(hits, phrases, where), records, sort)

    def _semantic(
        self,
        vector: np.ndarray,
        wanted: int,
        allowed: np.ndarray | None,
        per_video: bool,
        framed: Sequence[FramedQuery] = (),
    ) -> list[Hit]:
        """Ranked hits of the vector search for ``vector`` ``(1, D)``: ``wanted`` when that many exist.
        Each of ``framed`` (rows ``(1, D)``) searches its own moments among ``allowed``; a vector
        takes its best score of all (:func:`retrieval.search.framing.merge_neighbors`)."""
        scoped = [
            (f.vector, f.moments if allowed is None else np.intersect1d(f.moments, allowed, assume_unique=True))
            for f in framed
        ]
        scoped = [(row, ids) for row, ids in scoped if len(ids)]
        pool = wanted
        while True:  # a video's many moments take one hit: widen the pool until ``wanted`` hits
            (found,) = self.images.search(vector, pool, allowed)
            if scoped:
                more = [self.images.search(row, min(pool, len(ids)), ids)[0] for row, ids in scoped]
                found = merge_neighbors(found, more, pool)
            hits = self._hits(found, per_video)
            if len(hits) >= wanted or len(found.ids) < pool or pool >= len(self.images.index):
                return hits[:wanted]  # a widened pool can hold more files than asked for
            pool = min(4 * pool, len(self.images.index))

    def _hits(self, found: Neighbors, per_video: bool) -> list[Hit]:
        """Ranked hits of a vector search's neighbours (photos, and videos at their moments)."""
        ids = found.ids.tolist()
        records = self.catalog.images(ids)
        rest = [i for i in ids if i not in records]
        moments = self.catalog.moments(rest) if rest else {}
        videos = self.catalog.images(sorted({m.video_id for m in moments.values()})) if moments else {}
        return media_hits(found, records, moments, videos, per_video)

    def _with_matches(self, hits: list[Hit], phrases: Sequence[tuple[str, ...]], where: ImageFilter) -> list[Hit]:
        """``hits`` with the text each matched in (the query's words, then ``where.contains``;
        a video's: its file's names and captions)."""
        from retrieval.search.snippets import find_match

        wanted = [*phrases, *(tuple(tokens(c)) for c in where.contains)]
        if not hits or not wanted:
            return hits
        sources = self.catalog.keywords.sources([h.file_id for h in hits])
        return [replace(h, match=find_match(sources[h.file_id], wanted)) if h.file_id in sources else h for h in hits]

    @_while_open
    def similar(
        self,
        image_id: int,
        *,
        k: int = 10,
        where: ImageFilter = ImageFilter(),
        offset: int = 0,
        min_score: float | None = None,
    ) -> list[Hit]:
        """Images like the indexed image ``image_id`` ("more like this"), by its stored vector:
        nothing is decoded and no model loads. The image itself comes first (score 1).

        Raises:
            ItemNotFoundError: no indexed image has that id (see ``Hit.id``).
            QueryError: the arguments :meth:`search` refuses.
        """
        if isinstance(image_id, bool) or not isinstance(image_id, (int, np.integer)):
            raise QueryError(f"similar() takes an image id (Hit.id), not {type(image_id).__name__} ({image_id!r})")
        blob = self.catalog.vectors_for([int(image_id)]).get(int(image_id))
        if blob is None:
            raise ItemNotFoundError(f"no indexed image has id {image_id}; ids come from search results (Hit.id).")
        vector = np.frombuffer(blob, dtype="<f4")  # (D,)
        return self.search_vector(vector, k, where=where, offset=offset, min_score=min_score)

    # ---- inspecting ---------------------------------------------------------------------

    @_while_open
    def explain_no_hits(
        self, where: ImageFilter = ImageFilter(), *, min_score: float | None = None, offset: int = 0
    ) -> str:
        """Why a search with these options found no image, naming the filter that matched
        nothing ("no indexed image is under /nonexistent."); for messages after an empty search."""
        from retrieval.search.explain import explain_no_hits

        return explain_no_hits(self.count, where, min_score, offset)

    @_while_open
    def count(self, where: ImageFilter = ImageFilter()) -> int:
        """How many indexed images pass ``where`` (all of them by default); no model is loaded."""
        if not isinstance(where, ImageFilter):
            raise QueryError(f"where must be an ImageFilter, not {type(where).__name__}")
        self.images.refresh()
        if not where.active:
            return len(self.images.index)
        return len(self._selections.allowed(where, self.images.generation))

    @_while_open
    def info(self) -> LibraryInfo:
        """Counts, model, index kind and size of the library."""
        counts = self.catalog.counts()
        self.images.refresh()
        return LibraryInfo(
            directory=str(self.layout.root),
            catalog_url=_shown_url(self.catalog.url),
            model=self.identity.label(),
            model_spec=self.identity.spec,
            embed_dim=self.identity.embed_dim,
            images=counts["images"],
            failed=counts["failed"],
            texts=counts["texts"],
            index_kind=self.images.index.kind,
            vectors=len(self.images.index),
            index_memory=self.images.memory_bytes(),
            bytes_per_vec=round(self.images.memory_bytes() / max(1, len(self.images.index)), 1),
            videos=counts["videos"],
            moments=counts["moments"],
            bytes_on_disk=self.layout.bytes_on_disk(),
            exclude=self.exclusions(),
        )

    @_while_open
    def duplicates(self, config: DuplicateConfig | None = None) -> DuplicateReport:
        """Groups of duplicate images (exact copies, near copies, similar shots), each with a
        suggested keeper and why; see :mod:`retrieval.search.duplicates`. Reads the catalog
        only: no file is read, moved or deleted, and no model is loaded.

        Raises:
            QueryError: a config with unknown tiers or out-of-range thresholds.
        """
        from retrieval.search.duplicates import DuplicateConfig, find_duplicates

        return find_duplicates(self.catalog, self.identity.embed_dim, config or DuplicateConfig())

    @_while_open
    def failures(self, limit: int | None = None) -> list[tuple[str, str]]:
        """(path, reason) of every file that could not be indexed."""
        return [(r.path, r.error or "") for r in self.catalog.failures(limit)]


def _shown_url(url: str) -> str:
    from index.catalog import shown_url

    return shown_url(url)


def _prepare_text_tower(encoder: object) -> None:
    """After images were embedded on onnxruntime: write the fast-load copy of the same export's
    text tower now (retrieval/models/fast_load.py), so the first text search does not pay it."""
    prepare = getattr(encoder, "prepare", None)
    if prepare is not None:
        prepare("text")


def _check_query_types(text: object, image: object, terms: Sequence[object], k: object, offset: object) -> None:
    """Wrong argument types from API callers fail here, with the fix, not deep inside."""
    if text is not None and not isinstance(text, str):
        raise QueryError(f"text must be a string, not {type(text).__name__}")
    if (
        image is not None
        and not isinstance(image, (str, os.PathLike))
        and not type(image).__module__.startswith("PIL.")
    ):
        raise QueryError(
            f"image must be a file path or a PIL image, not {type(image).__name__} (for bytes: PIL.Image.open(io.BytesIO(data)))"
        )
    if getattr(image, "width", 1) == 0 or getattr(image, "height", 1) == 0:
        raise QueryError("the query image is empty (0 pixels wide or high)")
    if isinstance(terms, (str, Term)) or not all(isinstance(t, Term) for t in terms):
        raise QueryError("terms must be a list of Term(...) objects, e.g. [Term(text='a dog', weight=2)]")
    for name, value in (("k", k), ("offset", offset)):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
            raise QueryError(f"{name} must be a whole number, not {value!r}")


def _check_open_arguments(
    directory: object, model: object, pretrained: object, catalog_url: object, device: object, create: object
) -> None:
    """Wrong types from API callers fail here, naming the argument, before anything is made."""
    check_path(directory, "Library.open(directory)", optional=True)
    if model is not None and not isinstance(model, (str, ModelSpec)) and not hasattr(model, "encode_images"):
        raise ArgumentTypeError(
            f"Library.open(model=...) takes a model name or folder (str), a ModelSpec or a loaded encoder, "
            f"not {type(model).__name__} ({model!r})"
        )
    check_text_option(pretrained, "Library.open(pretrained=...)")
    check_text_option(catalog_url, "Library.open(catalog_url=...)")
    if not isinstance(device, str):
        raise ArgumentTypeError(f"Library.open(device=...) takes 'auto', 'cpu', 'cuda' or 'mps', not {device!r}")
    if not isinstance(create, bool):
        raise ArgumentTypeError(f"Library.open(create=...) takes True or False, not {create!r}")


def _check_catalog_not_emptied(layout: LibraryLayout, catalog: Catalog) -> None:
    """Refuse a catalog that was truncated or replaced by an empty one while the index files
    remember vectors: opening would reconcile the index down to nothing."""
    from index.snapshot import read_header

    if catalog.generation() > 0 or not layout.image_vectors.is_file():
        return
    try:
        header, _ = read_header(layout.image_vectors)
    except XmrError:
        return  # a damaged snapshot is rebuilt from the catalog as usual
    if header.generation > 0:
        catalog.close()
        raise CorruptFileError(
            f"the catalog {_shown_url(catalog.url)} is empty, but {layout.image_vectors.name} holds "
            f"{header.count} vectors from catalog generation {header.generation}: the catalog was "
            "truncated or replaced. Restore it from a backup; nothing was changed (to start over, "
            "index into a new library directory)."
        )


def _rebind_if_never_written(
    layout: LibraryLayout,
    model: str | ModelSpec | Encoder | None,
    encoder: Encoder | None,
    pretrained: str | None,
    catalog_url: str,
    create: bool,
    mismatch: ModelMismatchError,
) -> tuple[Manifest, bool]:
    """Give a library that never got a vector to the model asked for, under its write lock.

    Another process holding the lock may be in the first run with the library's own model
    (no batch committed yet): rebinding then would let that run write its vectors under the
    new model's name, so the mismatch stands.
    """
    lock = WriteLock(layout.lock)
    if not lock.acquire():
        raise ModelMismatchError(
            f"{mismatch} (Another xmr process is writing to this library with its own model right now, "
            "so it cannot be given to another model.)"
        ) from mismatch
    try:
        if not _never_written(layout):  # checked again under the lock: a run may have committed meanwhile
            raise mismatch
        rebind_empty(layout, model, encoder, pretrained)
        return open_manifest(layout, model, encoder, pretrained, catalog_url, create)
    finally:
        lock.release()


def _never_written(layout: LibraryLayout) -> bool:
    """Whether the library's catalog has never been written (no run got as far as a batch)."""
    manifest = read_manifest(layout.root)
    if manifest is None:
        return False
    catalog = open_catalog(layout.catalog_url(manifest.catalog_url))
    try:
        return catalog.generation() == 0
    finally:
        catalog.close()


def _catalog_in_use(layout: LibraryLayout, url: str) -> str:
    if url == layout.catalog_url():
        return (
            f"{layout.root} has a catalog ({layout.catalog_file.name}) but no {layout.manifest.name}, which "
            "says which model made its vectors: restore that file from a backup, or index into a "
            "new library directory. Nothing was changed."
        )
    return (
        f"the catalog database {_shown_url(url)} already holds another library's catalog; a new "
        "library needs an empty database (e.g. createdb xmr2). Nothing in it was changed."
    )


def _query_cache_key(model: ModelIdentity) -> str:
    """What a cached query vector depends on: the model's weights and open_clip's text pipeline."""
    open_clip_version = installed_version("open_clip_torch") or "?"
    return f"{model.arch}|{model.pretrained}|{model.weights_sha256}|{model.embed_dim}|open_clip {open_clip_version}"
