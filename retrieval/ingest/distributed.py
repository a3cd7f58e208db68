"""Index with Ray Data across a cluster: workers decode and embed, the driver commits.

Only reading and embedding ``plan.todo`` is distributed. The driver scans, plans, holds
the write lock and commits the workers' results through the path a local run uses
(:func:`retrieval.ingest.pipeline.commit_reads`), in plan order and batch by batch, so ids, failures,
copies, sidecar captions and resumability are those of a local run.

Workers open the files by the absolute paths the driver found, so on a cluster the photo
folders must be mounted at the same path on every node (NFS, SMB, a cluster filesystem).
Every worker loads the library's model from its identity (``spec``/``spec_pretrained``) and
refuses to embed when what it loaded is not that model.
"""

from __future__ import annotations

import logging
import pickle
import socket
from collections import OrderedDict
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Any

import numpy as np

from index.catalog import Catalog
from index.deps import attempt_import
from index.errors import XmrError
from index.manifest import ModelIdentity
from index.records import FileStat, ImageMeta
from index.tokens import TokenCache
from retrieval.errors import DistributedIndexError, ImageDecodeError, ModelMismatchError
from retrieval.images.decode import DecodeConfig, decode_file
from retrieval.ingest.commit import Progress, Read, Tally, commit_reads
from retrieval.ingest.config import IngestConfig
from retrieval.ingest.pipeline import apply_plan_edits
from retrieval.ingest.scan import Plan
from retrieval.ingest.sidecars import sidecar_captions
from retrieval.models.specs import ModelSpec

if TYPE_CHECKING:
    from retrieval.models.encoder import Encoder

__all__ = ["RAY_HINT", "DistributedIndexError", "EmbedActor", "RayConfig", "check_worker_model", "run_plan_ray"]

RAY_HINT = "Ray is not installed; install it with  pip install 'xmr[ray]'  (on the driver and every node)"
_CAPTION_CACHE = 8192  # caption vectors kept for the driver: a few batches' worth


@dataclass(frozen=True)
class RayConfig:
    """Where and how a ``--ray`` index run embeds."""

    address: str = ""  # ray.init address: "" = $RAY_ADDRESS or a new local Ray; "auto"; "ray://head:10001"
    gpus_per_actor: float = -1.0  # -1: 1 when the cluster has GPUs, else 0 (CPU actors)
    cpus_per_actor: float = 1.0  # CPUs each actor reserves; it decodes with that many threads
    actors: int = 0  # most embedding actors; 0: one per GPU, else one per cpus_per_actor CPUs
    runtime: str = "auto"  # what actors embed with: "auto" (torch on GPUs, onnxruntime on CPUs), "onnx", "torch"


def check_worker_model(expected: ModelIdentity, loaded: ModelIdentity, where: str) -> None:
    """Refuse a worker whose model differs from the library's (other weights or width).

    Raises:
        ModelMismatchError: naming the node and both models.
    """
    if not expected.same_model(loaded) or loaded.embed_dim != expected.embed_dim:
        raise ModelMismatchError(
            f"the Ray worker on {where} loaded {loaded.label()} (dim {loaded.embed_dim}) for {expected.spec!r}, "
            f"but the library was built with {expected.label()} (dim {expected.embed_dim}). "
            "Give every node the same model files at the same path (or the same cached weights), then rerun."
        )


class EmbedActor:
    """Ray Data callable class: loads the library's model once, then decodes and embeds batches.

    A batch is ``{"i": (B,), "path": (B,)}``; the result adds ``hash``, ``error``, ``payload``
    (pickled ``(ImageMeta, [(caption, vector bytes)])``), ``vector`` ``(B, D)`` float32
    (zeros where the file failed), ``grid`` (with ``tokens``: each image's float16 token grid
    as bytes, from the same forward pass; else empty) and ``refusal`` (a pickled XmrError when
    this worker could not load the library's model: it embeds nothing then).
    """

    def __init__(
        self,
        identity: dict[str, object],
        device: str,
        decode: DecodeConfig,
        threads: int,
        tokens: bool = False,
        runtime: str = "auto",
    ) -> None:
        from retrieval.models.runtime import FOR_IMAGES, open_encoder, pick_runtime

        self.expected = ModelIdentity.from_dict(identity)
        self.decode = decode
        self.tokens = tokens
        self.pool = ThreadPoolExecutor(max(1, threads), thread_name_prefix="xmr-ray-decode")
        self.refusal: XmrError | None = None
        try:
            runtime = pick_runtime("torch" if tokens else runtime, device, FOR_IMAGES)  # only torch gives tokens
            if runtime == "torch":
                import torch

                torch.set_num_threads(max(1, threads))
            spec = ModelSpec(self.expected.spec, self.expected.spec_pretrained)
            self.encoder = open_encoder(spec, device, runtime, FOR_IMAGES, threads=max(1, threads))
            check_worker_model(self.expected, self.encoder.identity, socket.gethostname())
        except XmrError as exc:
            # Sent to the driver as data: Ray passes a worker's exception on only as text.
            self.refusal = exc

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        paths = [str(p) for p in batch["path"]]
        if self.refusal is not None:
            return self._refuse(batch, len(paths))
        reads = list(self.pool.map(self._read, paths))
        vectors = np.zeros((len(paths), self.expected.embed_dim), np.float32)  # (B, D)
        grids = np.array([b""] * len(paths), dtype=object)
        ok = [j for j, r in enumerate(reads) if not r[1]]
        if ok and self.tokens:
            from retrieval.models.features import image_tokens

            vectors[ok], made = image_tokens(self.encoder, self.encoder.stack([reads[j][3] for j in ok]))  # type: ignore[arg-type]
            for j, grid in zip(ok, made):
                grids[j] = np.ascontiguousarray(grid, "<f2").tobytes()
        elif ok:
            vectors[ok] = self.encoder.encode_images(self.encoder.stack([reads[j][3] for j in ok]))
        payloads = [
            pickle.dumps((r[2], self._captions(path, r[2]))) if not r[1] else b"" for path, r in zip(paths, reads)
        ]
        return {
            "i": np.asarray(batch["i"], np.int64),
            "hash": np.array([r[0] for r in reads], dtype=object),
            "error": np.array([r[1] for r in reads], dtype=object),
            "payload": np.array(payloads, dtype=object),
            "vector": vectors,
            "grid": grids,
            "refusal": np.array([b""] * len(paths), dtype=object),
        }

    def _refuse(self, batch: dict[str, np.ndarray], n: int) -> dict[str, np.ndarray]:
        """Every row carries the pickled error that stopped this worker; the driver raises it."""
        empty = np.array([""] * n, dtype=object)
        return {
            "i": np.asarray(batch["i"], np.int64),
            "hash": empty,
            "error": empty,
            "payload": np.array([b""] * n, dtype=object),
            "vector": np.zeros((n, self.expected.embed_dim), np.float32),
            "grid": np.array([b""] * n, dtype=object),
            "refusal": np.array([pickle.dumps(self.refusal)] * n, dtype=object),
        }

    def _read(self, path: str) -> tuple[str, str, ImageMeta | None, Any]:  # pixels: the encoder's own type
        """(content hash, error, meta, pixels) of one file; a bad file never stops the batch."""
        try:
            decoded = decode_file(path, self.decode)
            return decoded.content_hash, "", decoded.meta, self.encoder.preprocess(decoded.image)
        except ImageDecodeError as exc:
            return "", str(exc), None, None
        except Exception as exc:  # same wording as a local run
            return "", f"{exc.__class__.__name__}: {exc}", None, None

    def _captions(self, path: str, meta: object) -> list[tuple[str, bytes]]:
        texts = sidecar_captions(path, getattr(meta, "description", None))
        if not texts:
            return []
        return [(t, v.astype("<f4").tobytes()) for t, v in zip(texts, self.encoder.encode_texts(texts))]


class _CaptionEncoder:
    """The driver's text encoder: caption vectors the workers made, else the library's model."""

    def __init__(self, load: Callable[[], Encoder], identity: ModelIdentity) -> None:
        self._load = load
        self.identity = identity
        self.dim = identity.embed_dim
        self.device = "cpu"
        self.known: OrderedDict[str, bytes] = OrderedDict()

    def remember(self, captions: Sequence[tuple[str, bytes]]) -> None:
        for body, vector in captions:
            self.known[body] = vector
            self.known.move_to_end(body)
        while len(self.known) > _CAPTION_CACHE:
            self.known.popitem(last=False)

    def encode_texts(self, texts: Sequence[str]) -> np.ndarray:
        """``(N, D)``: from the workers when they embedded these texts, else loads the model here."""
        if all(t in self.known for t in texts):
            return np.stack([np.frombuffer(self.known[t], "<f4") for t in texts]).reshape(len(texts), self.dim)
        return self._load().encode_texts(texts)  # a sidecar edited since a worker read it, or recaptions

    def encode_images(self, pixels: object) -> np.ndarray:
        raise RuntimeError("images are embedded by the Ray workers")  # every Read carries a vector

    def preprocess(self, image: object) -> object:
        raise RuntimeError("images are decoded by the Ray workers")

    def stack(self, pixels: Sequence[object]) -> object:
        raise RuntimeError("images are embedded by the Ray workers")


def run_plan_ray(
    plan: Plan,
    identity: ModelIdentity,
    load_encoder: Callable[[], Encoder],
    catalog: Catalog,
    config: IngestConfig,
    ray_config: RayConfig = RayConfig(),
    on_progress: Callable[[Progress], None] | None = None,
    tokens: TokenCache | None = None,
) -> Tally:
    """Like :func:`retrieval.ingest.pipeline.run_plan`, with ``plan.todo`` read and embedded by Ray actors.

    ``load_encoder`` gives the library's encoder; the driver calls it only for captions the
    workers did not embed (sidecars edited meanwhile, caption-only updates). With ``tokens``
    the workers also send each image's token grid, which the driver appends to that cache
    before committing the batch, as a local run does.

    Raises:
        MissingDependencyError: Ray is not installed.
        ModelMismatchError: a worker loaded another model than the library's.
        DistributedIndexError: the Ray run failed otherwise; committed batches are kept.
    """
    if plan.todo:
        attempt_import("ray.data", RAY_HINT)  # before anything is written
    texts = _CaptionEncoder(load_encoder, identity)
    apply_plan_edits(plan, texts, catalog, config)
    if not plan.todo:
        return commit_reads((), plan, texts, catalog, config, on_progress)
    with _connected(ray_config.address) as ray:
        reads = _ray_reads(ray, plan, identity, config, ray_config, texts, tokens is not None)
        return commit_reads(reads, plan, texts, catalog, config, on_progress, tokens)


@contextmanager
def _connected(address: str) -> Iterator[ModuleType]:
    """The ray module, connected: an existing connection as is, else ray.init (shut down after)."""
    ray = attempt_import("ray", RAY_HINT)
    attempt_import("ray.data", RAY_HINT)
    if ray.is_initialized():
        yield ray
        return
    kwargs: dict[str, object] = {"logging_level": logging.WARNING}
    if address:
        # Ship xmr's own code (the retrieval and index package folders) to the nodes; they
        # need its dependencies (torch, open_clip) installed.
        package = Path(__file__).resolve().parents[1]
        kwargs["runtime_env"] = {"py_modules": [str(package), str(package.parent / "index")]}
    else:
        kwargs["include_dashboard"] = False
    try:
        ray.init(address=address or None, **kwargs)
    except Exception as exc:
        raise DistributedIndexError(f"cannot start or reach Ray at {address or 'a new local instance'}: {exc}") from exc
    try:
        yield ray
    finally:
        ray.shutdown()


def _ray_reads(
    ray: ModuleType,
    plan: Plan,
    identity: ModelIdentity,
    config: IngestConfig,
    rc: RayConfig,
    texts: _CaptionEncoder,
    tokens: bool,
) -> Iterator[Read]:  # noqa: PLR0913
    """The workers' reads of ``plan.todo``, in plan order."""
    context = ray.data.DataContext.get_current()
    saved = (context.execution_options.preserve_order, context.enable_progress_bars)
    context.execution_options.preserve_order = True  # commit in plan order: same ids as a local run
    context.enable_progress_bars = False  # the CLI draws its own
    data_logger = logging.getLogger("ray.data")
    level = data_logger.level
    data_logger.setLevel(max(level, logging.WARNING))  # no per-run INFO lines around the progress bar
    try:
        dataset = _dataset(ray, plan.todo, identity, config, rc, tokens)
        # No prefetch: Ray's iterator then holds each result back until the next ones are in.
        # The actors run ahead regardless, as far as Ray's backpressure lets them.
        for batch in dataset.iter_batches(batch_size=None, batch_format="numpy", prefetch_batches=0):
            yield from _unpack(batch, plan.todo, texts)
    except XmrError:
        raise  # a worker's refusal (model mismatch, model not found), as it raised it
    except Exception as exc:  # errors of the commit path are raised in commit_reads, not here
        raise DistributedIndexError(
            f"the Ray run stopped: {exc.__class__.__name__}: {str(exc).strip()[:2000]}. "
            "The batches committed before it are kept; rerun the same command to resume."
        ) from exc
    finally:
        context.execution_options.preserve_order, context.enable_progress_bars = saved
        data_logger.setLevel(level)


def _dataset(
    ray: ModuleType, todo: list[FileStat], identity: ModelIdentity, config: IngestConfig, rc: RayConfig, tokens: bool
):  # noqa: ANN202, PLR0913
    resources = ray.cluster_resources()
    gpus = rc.gpus_per_actor if rc.gpus_per_actor >= 0 else (1.0 if resources.get("GPU", 0) >= 1 else 0.0)
    if rc.actors > 0:
        actors = rc.actors
    elif gpus > 0:
        actors = max(1, int(resources.get("GPU", 0) / gpus))
    else:
        actors = max(1, int(resources.get("CPU", 1) / rc.cpus_per_actor))
    import pyarrow as pa  # comes with ray[data]

    # Blocks of exactly batch_size files: Ray bundles shorter blocks into one longer call.
    step = config.batch_size
    blocks = [
        pa.table({"i": list(range(k, min(k + step, len(todo)))), "path": [s.path for s in todo[k : k + step]]})
        for k in range(0, len(todo), step)
    ]
    return ray.data.from_arrow(blocks).map_batches(
        EmbedActor,
        batch_size=step,
        batch_format="numpy",
        compute=ray.data.ActorPoolStrategy(min_size=1, max_size=actors),  # grows as resources allow
        num_cpus=rc.cpus_per_actor,
        num_gpus=gpus,
        fn_constructor_kwargs={
            "identity": identity.to_dict(),
            "device": "cuda" if gpus > 0 else "cpu",
            "decode": config.decode,
            "threads": max(1, int(rc.cpus_per_actor)),
            "tokens": tokens,
            "runtime": rc.runtime,
        },
    )


def _unpack(batch: dict[str, np.ndarray], todo: list[FileStat], texts: _CaptionEncoder) -> Iterator[Read]:
    for i, digest, error, payload, vector, grid, refusal in zip(
        batch["i"], batch["hash"], batch["error"], batch["payload"], batch["vector"], batch["grid"], batch["refusal"]
    ):
        if refusal:
            raise pickle.loads(refusal)  # noqa: S301 (our own workers' output)
        stat = todo[int(i)]
        if error:
            yield Read(stat, error=str(error))
            continue
        meta, captions = pickle.loads(payload)  # noqa: S301 (our own workers' output)
        texts.remember(captions)
        yield Read(stat, str(digest), None, meta, vector=np.asarray(vector, "<f4").tobytes(), grid=bytes(grid))
