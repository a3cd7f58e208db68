"""Option aliases shared by several commands, and option values turned into library configs.

Every option names its value in help (``N``, ``DIR``, ``DATE``...) instead of a Python type,
shows its default, and lists its choices; whole numbers with a lower bound are parsed by
:func:`at_least`, whose refusal says the bound in words.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Literal, Optional

import typer

if TYPE_CHECKING:
    from index.config import IndexConfig
    from retrieval.ingest.distributed import RayConfig
    from retrieval.ingest.ocr import OcrConfig

__all__ = [
    "AfterOpt",
    "AlignOpt",
    "AllowHostOpt",
    "ArchOpt",
    "AugmentOpt",
    "BatchSizeOpt",
    "BeforeOpt",
    "CacheTokensOpt",
    "CatalogOpt",
    "CheckpointOpt",
    "ContainsOpt",
    "DATE_FORMATS",
    "DEFAULT_RERANK_K",
    "Device",
    "DeviceOpt",
    "DuplicatesJsonOpt",
    "EachMomentOpt",
    "ExportOutOpt",
    "EncoderOpt",
    "EpochsOpt",
    "EvalModelOpt",
    "ExcludeOpt",
    "ExtOpt",
    "ForgetExcludeOpt",
    "Fusion",
    "FusionOpt",
    "GroupsOpt",
    "HardNegativesOpt",
    "HostOpt",
    "ImageOpt",
    "ImagesRootOpt",
    "InTextsOpt",
    "IndexKind",
    "IndexKindOpt",
    "InitOpt",
    "InitPretrainedOpt",
    "JsonOpt",
    "LayersOpt",
    "LibraryOpt",
    "LrOpt",
    "MaxUploadOpt",
    "Media",
    "MediaOpt",
    "MemoryBudgetOpt",
    "MinScoreOpt",
    "MirrorOpt",
    "Mode",
    "ModeOpt",
    "ModelOpt",
    "NoFollowOpt",
    "NotImageOpt",
    "NotOpt",
    "OcrOpt",
    "OcrWorkersOpt",
    "OffsetOpt",
    "OutOpt",
    "PairsArg",
    "PathsArg",
    "PathsOnlyOpt",
    "Print0Opt",
    "FailuresPrint0Opt",
    "PollOpt",
    "PoolOpt",
    "PortOpt",
    "PretrainedOpt",
    "PreviewOpt",
    "RayActorsOpt",
    "RayAddressOpt",
    "RayGpusOpt",
    "RayOpt",
    "RelationStepsOpt",
    "RerankBatchOpt",
    "RerankKOpt",
    "RerankStepsOpt",
    "RerankerOpt",
    "RetryFailedOpt",
    "RuntimeOpt",
    "SearchJsonOpt",
    "SeedOpt",
    "ServeRerankerOpt",
    "ServeWatchOpt",
    "SettleOpt",
    "SimilarScoreOpt",
    "Sort",
    "SortOpt",
    "SourcesArg",
    "SpatialOpt",
    "SplitOpt",
    "StepsOpt",
    "TextFilesArg",
    "TierOpt",
    "TokenOpt",
    "TopOpt",
    "TrainBatchOpt",
    "UnderOpt",
    "VideoIntervalOpt",
    "WarmupOpt",
    "WatchJsonOpt",
    "WatchPathsArg",
    "WeightOpt",
    "WidthOpt",
    "WordsArg",
    "WorkersOpt",
    "at_least",
    "make_index_config",
    "make_ocr_config",
    "make_ray_config",
    "not_negative",
    "number",
    "positive",
]

Device = Literal["auto", "cpu", "cuda", "mps"]
Runtime = Literal["auto", "onnx", "torch"]
IndexKind = Literal["auto", "exact", "ivf", "sq8", "ivfpq", "ondisk"]


def at_least(minimum: int, maximum: int | None = None) -> Callable[[str], int]:
    """A parser of whole numbers in ``minimum..maximum`` whose error names the bounds in words
    (click would print ``x>=1`` in help and errors)."""

    def parse(text: str | int) -> int:
        try:
            value = int(text)
        except (TypeError, ValueError):
            raise typer.BadParameter(f"{text!r} is not a whole number") from None
        if value < minimum or (maximum is not None and value > maximum):
            bound = f"at least {minimum}" if maximum is None else f"from {minimum} to {maximum}"
            raise typer.BadParameter(f"must be {bound} (got {value})")
        return value

    parse.__name__ = f"whole number >= {minimum}"
    return parse


def positive(text: str | float) -> float:
    """A parser of finite numbers above zero."""
    value = _finite(text)
    if not value > 0:
        raise typer.BadParameter(f"must be a number above 0 (got {text})")
    return value


def not_negative(text: str | float) -> float:
    """A parser of finite numbers of at least zero."""
    value = _finite(text)
    if value < 0:
        raise typer.BadParameter(f"must be 0 or more (got {text})")
    return value


def _finite(text: str | float) -> float:
    try:
        value = float(text)
    except (TypeError, ValueError):
        raise typer.BadParameter(f"{text!r} is not a number") from None
    if value != value or value in (float("inf"), float("-inf")):
        raise typer.BadParameter(f"must be a finite number (got {text})")
    return value


def number(*decls: str, minimum: int, help: str, metavar: str = "N", maximum: int | None = None) -> Any:
    """A whole-number option in ``minimum..maximum`` (use as ``Annotated[int, number(...)]``)."""
    return typer.Option(*decls, parser=at_least(minimum, maximum), metavar=metavar, help=help)


LibraryOpt = Annotated[
    Optional[Path],
    typer.Option(
        "--library",
        "-L",
        envvar="XMR_LIBRARY",
        metavar="DIR",
        show_default="$XDG_DATA_HOME/xmr/default",
        help="Library directory.",
    ),
]
CatalogOpt = Annotated[
    str,
    typer.Option(
        "--catalog-url",
        metavar="URL",
        show_default="SQLite in the library",
        help="SQLAlchemy URL of the catalog, when the library is created (remembered).",
    ),
]
ModelOpt = Annotated[
    Optional[str],
    typer.Option(
        "--model",
        "-m",
        metavar="MODEL",
        show_default="the library's model, else ViT-B-32",
        help="open_clip name, local-dir:PATH, a model folder or hf-hub:ORG/REPO; checked against the library's model.",
    ),
]
PretrainedOpt = Annotated[
    Optional[str],
    typer.Option(
        "--pretrained",
        metavar="TAG|FILE",
        show_default="laion2b_s34b_b79k with ViT-B-32",
        help="Pretrained tag or weights file going with --model.",
    ),
]
DeviceOpt = Annotated[
    Device,
    typer.Option(
        "--device", help="Where the model runs: auto picks cuda, then mps, then cpu (one GPU: CUDA_VISIBLE_DEVICES)."
    ),
]
RuntimeOpt = Annotated[
    Runtime,
    typer.Option(
        "--runtime",
        help="What runs the model: auto picks onnxruntime for queries, and for images unless a GPU is there for torch.",
    ),
]
JsonOpt = Annotated[bool, typer.Option("--json", help="Machine-readable JSON output.")]
RerankerOpt = Annotated[
    str,
    typer.Option(
        "--reranker",
        metavar="SPEC",
        show_default=False,
        help="Rescore the top results: a folder from train-reranker, or blip:HUB_NAME.",
    ),
]
CheckpointOpt = Annotated[
    float,
    typer.Option(
        "--checkpoint-seconds",
        metavar="SECONDS",
        parser=not_negative,
        help="Write a resumable checkpoint at least this often (0: every step); a rerun resumes with the same value.",
    ),
]
DEFAULT_RERANK_K = 50  # == retrieval.rerank.base.DEFAULT_RERANK_K (not imported: --help stays light)
RerankKOpt = Annotated[
    int, number("--rerank-k", minimum=1, help="How many dual-encoder results the reranker rescores.")
]


def make_index_config(kind: str, budget: str) -> IndexConfig | None:
    """An IndexConfig from --index-kind/--memory-budget; None (the library's saved one) without either.

    Raises:
        typer.BadParameter: an unknown kind or an unreadable budget.
    """
    if not kind and not budget:
        return None
    from index.config import IndexConfig, parse_bytes

    try:
        return IndexConfig(kind=kind or "auto", memory_budget=parse_bytes(budget) if budget else 0)
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from None


def make_ray_config(address: str, gpus: float, actors: int) -> RayConfig:
    """The RayConfig of --ray-address/--ray-gpus/--ray-actors (a negative --ray-gpus: decide per cluster)."""
    from retrieval.ingest.distributed import RayConfig

    return RayConfig(address=address, gpus_per_actor=gpus if gpus >= 0 else -1.0, actors=actors)


# ---- index --------------------------------------------------------------------------------------
PathsArg = Annotated[
    list[Path], typer.Argument(metavar="PATH", help="Folders, photos or videos to index (folders recursively).")
]
BatchSizeOpt = Annotated[
    int, number("--batch-size", minimum=1, help="Images per encoder batch and per catalog transaction.")
]
WorkersOpt = Annotated[int, number("--workers", minimum=0, help="Decoder threads (0: min(4, cores)).")]
RetryFailedOpt = Annotated[
    bool, typer.Option("--retry-failed", help="Read files that failed before again, even if unchanged.")
]
IndexKindOpt = Annotated[
    Optional[IndexKind],
    typer.Option(
        "--index-kind", show_default="the library's, else auto", help="Vector index kind (remembered by the library)."
    ),
]
MemoryBudgetOpt = Annotated[
    str,
    typer.Option(
        "--memory-budget",
        metavar="SIZE",
        show_default="no limit",
        help="Memory the vector index may keep resident, e.g. 2GB; auto picks the kind that fits (remembered).",
    ),
]
CacheTokensOpt = Annotated[
    bool,
    typer.Option(
        "--cache-tokens", help="Keep each image's encoder tokens on disk so --reranker needs no decoding (remembered)."
    ),
]
RayOpt = Annotated[bool, typer.Option("--ray", help="Embed with Ray actors (a new local Ray, or $RAY_ADDRESS).")]
RayAddressOpt = Annotated[
    str,
    typer.Option(
        "--ray-address",
        metavar="ADDRESS",
        show_default=False,
        help="Ray cluster to use (auto, ray://HEAD:10001); implies --ray.",
    ),
]
RayGpusOpt = Annotated[
    float,
    typer.Option(
        "--ray-gpus", metavar="GPUS", show_default="1 if the cluster has GPUs, else 0", help="GPUs per Ray actor."
    ),
]
RayActorsOpt = Annotated[
    int, number("--ray-actors", minimum=0, help="Most Ray actors (0: one per GPU, else one per CPU).")
]

OcrOpt = Annotated[
    Optional[bool],
    typer.Option(
        "--ocr/--no-ocr",
        show_default="the library's, else off",
        help="Read the text in photos too (pip install 'xmr[ocr]'); remembered by the library.",
    ),
]
OcrWorkersOpt = Annotated[
    int, number("--ocr-workers", minimum=0, help="OCR threads beside the encoder (0: half the cores).")
]
VideoIntervalOpt = Annotated[
    float,
    typer.Option(
        "--video-interval",
        metavar="SECONDS",
        parser=positive,
        help="Seconds between frames sampled from a video (scene cuts add more).",
    ),
]

# ---- search -------------------------------------------------------------------------------------
WordsArg = Annotated[
    Optional[list[str]],
    typer.Argument(metavar="WORDS", show_default=False, help="What to look for, in words (several add up)."),
]
ImageOpt = Annotated[
    Optional[list[Path]], typer.Option("--image", "-i", metavar="FILE", help="Find images like this one (repeatable).")
]
NotOpt = Annotated[
    Optional[list[str]], typer.Option("--not", metavar="WORDS", help="Steer away from these words (repeatable).")
]
NotImageOpt = Annotated[
    Optional[list[Path]], typer.Option("--not-image", metavar="FILE", help="Steer away from this image (repeatable).")
]
WeightOpt = Annotated[
    Optional[list[str]],
    typer.Option("--weight", metavar="W:TERM", help="Weigh a text or image given here, e.g. 2:beach (repeatable)."),
]
TopOpt = Annotated[int, number("--top", "-k", minimum=1, help="Number of results.")]
OffsetOpt = Annotated[int, number("--offset", minimum=0, help="Skip this many results first (paging).")]
MinScoreOpt = Annotated[
    Optional[float],
    typer.Option(
        "--min-score",
        metavar="SCORE",
        show_default=False,
        help="Drop results scoring below this (cosine; with --reranker a probability).",
    ),
]
UnderOpt = Annotated[
    Optional[list[Path]], typer.Option("--under", metavar="DIR", help="Only images under this folder (repeatable).")
]
DATE_FORMATS = "YYYY, YYYY-MM, YYYY-MM-DD or YYYY-MM-DDTHH:MM"
AfterOpt = Annotated[
    Optional[str],
    typer.Option(
        "--after",
        metavar="DATE",
        help=f"Taken at or after this date, {DATE_FORMATS}; a year or month means its start "
        "(EXIF capture time, else the file's mtime).",
    ),
]
BeforeOpt = Annotated[
    Optional[str],
    typer.Option(
        "--before",
        metavar="DATE",
        help=f"Taken before this date, {DATE_FORMATS}; a year or month means its end (--before 2024 keeps all of 2024).",
    ),
]
ExtOpt = Annotated[
    Optional[list[str]],
    typer.Option("--ext", metavar="EXT[,EXT]", help="Only these extensions, e.g. jpg,png (repeatable)."),
]
SearchJsonOpt = Annotated[bool, typer.Option("--json", help="One JSON object per result line.")]
PathsOnlyOpt = Annotated[bool, typer.Option("--paths", help="Bare paths, one per line (for pipes).")]
InTextsOpt = Annotated[
    bool,
    typer.Option("--texts", help="Rank the texts added with add-texts (image-to-text search) instead of the images."),
]
Print0Opt = Annotated[
    bool,
    typer.Option("--print0", help="Bare paths, each ended by NUL, byte for byte as named (for xargs -0)."),
]
FailuresPrint0Opt = Annotated[
    bool,
    typer.Option("--print0", help="Only the paths, each ended by NUL, byte for byte as named (for xargs -0)."),
]
PreviewOpt = Annotated[
    bool, typer.Option("--preview", help="Show thumbnails inline (kitty, iTerm2 and WezTerm terminals).")
]

Mode = Literal["auto", "semantic", "keyword", "hybrid"]
ModeOpt = Annotated[
    Mode,
    typer.Option(
        "--mode",
        help="semantic (the model), keyword (the words in the images' text, names, captions, keywords) or hybrid "
        "(both fused); auto: hybrid when an image's own text holds a word of the query.",
    ),
]
ContainsOpt = Annotated[
    Optional[list[str]],
    typer.Option(
        "--contains",
        metavar="WORDS",
        help="Only images whose text (OCR, names, captions, keywords) has these words in a row (repeatable).",
    ),
]
Sort = Literal["relevance", "date", "-date"]
SortOpt = Annotated[
    Sort, typer.Option("--sort", help="Order of the results: relevance, or capture time (date: oldest first).")
]
Media = Literal["all", "photos", "videos"]
MediaOpt = Annotated[Media, typer.Option("--media", help="Photos, videos or both.")]
EachMomentOpt = Annotated[
    bool,
    typer.Option(
        "--each-moment", help="List every matching moment of a video, not one hit per video (--mode semantic)."
    ),
]
NoVideoFramingOpt = Annotated[
    bool,
    typer.Option(
        "--no-video-framing",
        help="Score video moments against each --image as given only, not also cropped to the video's shape.",
    ),
]

# ---- texts --------------------------------------------------------------------------------------
TextFilesArg = Annotated[
    list[Path],
    typer.Argument(metavar="FILE", help=".txt (one text per line), pairs .jsonl, or .csv with a text column."),
]
SourcesArg = Annotated[
    list[Path], typer.Argument(metavar="FILE", help="Files whose texts to remove (as given to add-texts).")
]

# ---- serve --------------------------------------------------------------------------------------
HostOpt = Annotated[
    str, typer.Option("--host", metavar="ADDRESS", help="Address to listen on; anything but loopback needs --token.")
]
PortOpt = Annotated[int, number("--port", minimum=1, maximum=65535, metavar="PORT", help="TCP port.")]
TokenOpt = Annotated[
    str,
    typer.Option(
        "--token",
        envvar="XMR_TOKEN",
        metavar="SECRET",
        show_default=False,
        help="Secret every request must carry (Bearer header, ?token= once, then a cookie).",
    ),
]
ServeRerankerOpt = Annotated[
    str,
    typer.Option(
        "--reranker", metavar="SPEC", show_default=False, help="Reranker to load for requests that ask for rerank."
    ),
]
MaxUploadOpt = Annotated[
    float, typer.Option("--max-upload-mb", metavar="MB", parser=positive, help="Largest uploaded query image, in MiB.")
]
AllowHostOpt = Annotated[
    Optional[list[str]],
    typer.Option(
        "--allow-host",
        metavar="NAME",
        help="A host name to answer besides localhost, e.g. a reverse proxy's (repeatable).",
    ),
]

# ---- train, eval, train-reranker ----------------------------------------------------------------
PairsArg = Annotated[
    Path,
    typer.Argument(metavar="PAIRS", help="Pairs folder (pairs.jsonl + images), pairs.jsonl, or a Karpathy split JSON."),
]
OutOpt = Annotated[
    Path, typer.Option("--out", "-o", metavar="DIR", help="Folder to write (resumed when it holds an interrupted run).")
]
ExportOutOpt = Annotated[Path, typer.Option("--out", "-o", metavar="DIR", help="Folder to write; new or empty.")]
ArchOpt = Annotated[
    str,
    typer.Option(
        "--arch",
        metavar="ARCH",
        help="Architecture to train from scratch: a shipped name, an open_clip name or a config .json.",
    ),
]
InitOpt = Annotated[
    str,
    typer.Option(
        "--init", metavar="MODEL", show_default=False, help="Fine-tune this model (any --model value) instead."
    ),
]
InitPretrainedOpt = Annotated[
    str,
    typer.Option("--init-pretrained", metavar="TAG|FILE", show_default=False, help="--pretrained going with --init."),
]
EpochsOpt = Annotated[int, number("--epochs", minimum=1, help="Passes over the pairs (ignored when --steps is given).")]
StepsOpt = Annotated[int, number("--steps", minimum=0, help="Total optimiser steps (0: from --epochs).")]
TrainBatchOpt = Annotated[int, number("--batch-size", minimum=2, help="Pairs per step (the contrastive batch).")]
LrOpt = Annotated[
    float,
    typer.Option("--lr", metavar="RATE", parser=not_negative, help="Peak learning rate (after warm-up, cosine decay)."),
]
WarmupOpt = Annotated[int, number("--warmup", minimum=0, help="Warm-up steps (linear).")]
SeedOpt = Annotated[int, typer.Option("--seed", metavar="N", help="Seed: the same seed gives the same run on the CPU.")]
HardNegativesOpt = Annotated[
    bool, typer.Option("--hard-negatives/--no-hard-negatives", help="Use each line's negatives in the loss.")
]
AugmentOpt = Annotated[
    bool, typer.Option("--augment/--no-augment", help="Small translations and caption-mirroring flips.")
]
SplitOpt = Annotated[str, typer.Option("--split", metavar="SPLIT", help="Karpathy split to read (train, val, test).")]
EvalModelOpt = Annotated[
    str, typer.Option("--model", "-m", metavar="MODEL", help="Model to evaluate (any --model value).")
]
ImagesRootOpt = Annotated[
    Optional[Path],
    typer.Option("--images", metavar="DIR", show_default=False, help="Root folder of the Karpathy images."),
]
GroupsOpt = Annotated[
    Optional[Literal["shapes-world"]],
    typer.Option("--groups", show_default=False, help="Also report per caption group."),
]
EncoderOpt = Annotated[
    str,
    typer.Option("--model", "-m", metavar="MODEL", help="The library's encoder (any --model value); it stays frozen."),
]
Fusion = Literal["cross-attention", "attention-pool", "single-stream", "bilinear", "concat"]
FusionOpt = Annotated[
    Fusion, typer.Option("--fusion", help="Fusion head that reads the text and image tokens together.")
]
RerankStepsOpt = Annotated[int, number("--steps", minimum=1, help="Total optimiser steps.")]
RerankBatchOpt = Annotated[int, number("--batch-size", minimum=2, help="Caption lines per step.")]
WidthOpt = Annotated[
    int, number("--width", minimum=0, help="Channels inside the head (0: the encoder's embedding size).")
]
LayersOpt = Annotated[int, number("--layers", minimum=1, help="Fusion layers (hops).")]
PoolOpt = Annotated[int, number("--pool", minimum=1, help="Average-pool the image patch grid by this factor first.")]
AlignOpt = Annotated[
    bool,
    typer.Option(
        "--align-init/--no-align-init", help="Start the head from the encoder's output projections (width 0)."
    ),
]
MirrorOpt = Annotated[
    bool,
    typer.Option("--mirror/--no-mirror", help="Mirror half the lines: token grid columns and left/right in captions."),
]
SpatialOpt = Annotated[
    bool,
    typer.Option("--spatial/--no-spatial", help="The head's spatial readout (where each word looks, into the score)."),
]
RelationStepsOpt = Annotated[
    int,
    number(
        "--relation-steps",
        minimum=0,
        help="First steps on caption vs relations-reversed caption alone (part of --steps).",
    ),
]

# ---- what enters the library (index, watch) -----------------------------------------------------
ExcludeOpt = Annotated[
    Optional[list[str]],
    typer.Option(
        "--exclude",
        metavar="PATTERN",
        help="Leave out files and folders matching this gitignore pattern, e.g. '*.tmp', 'Private/', "
        "~/Pictures/scans (repeatable; remembered by the library).",
    ),
]
ForgetExcludeOpt = Annotated[
    Optional[list[str]],
    typer.Option(
        "--forget-exclude",
        metavar="PATTERN",
        help="Stop leaving out what a remembered --exclude pattern named (repeatable).",
    ),
]
NoFollowOpt = Annotated[
    bool, typer.Option("--no-follow", help="Do not walk symbolic links to folders (they are listed instead).")
]
PollOpt = Annotated[
    bool,
    typer.Option("--poll", help="Poll for changes instead of kernel events (network mounts that send none)."),
]
SettleOpt = Annotated[
    float,
    typer.Option(
        "--settle",
        metavar="SECONDS",
        parser=not_negative,
        help="Seconds a changed file must stay unchanged before it is read.",
    ),
]

# ---- watch, duplicates --------------------------------------------------------------------------
WatchPathsArg = Annotated[list[Path], typer.Argument(metavar="PATH", help="Folders to keep indexed (recursively).")]
WatchJsonOpt = Annotated[bool, typer.Option("--json", help="One JSON report per committed batch.")]
ServeWatchOpt = Annotated[
    Optional[list[Path]],
    typer.Option(
        "--watch", metavar="DIR", help="Also keep this folder indexed while serving (repeatable; see xmr watch)."
    ),
]
TierOpt = Annotated[
    Optional[list[str]],
    typer.Option(
        "--tier", metavar="TIER", show_default="all", help="exact, near and/or similar (repeatable or comma-separated)."
    ),
]
SimilarScoreOpt = Annotated[
    float, typer.Option("--min-score", metavar="SCORE", help="similar tier: vectors at least this alike (cosine).")
]
DuplicatesJsonOpt = Annotated[bool, typer.Option("--json", help="One JSON object per group line.")]


def make_ocr_config(workers: int) -> OcrConfig | None:
    """The OcrConfig of --ocr-workers; None (the default config) when it is 0."""
    if not workers:
        return None
    from retrieval.ingest.ocr import OcrConfig

    return OcrConfig(workers=workers)
