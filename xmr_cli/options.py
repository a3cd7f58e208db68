"""Option aliases shared by several commands, and option values turned into library configs."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Optional

import typer

if TYPE_CHECKING:
    from index.config import IndexConfig
    from retrieval.ingest.distributed import RayConfig

__all__ = [
    "CatalogOpt",
    "CheckpointOpt",
    "DEFAULT_RERANK_K",
    "DeviceOpt",
    "JsonOpt",
    "LibraryOpt",
    "ModelOpt",
    "PretrainedOpt",
    "RerankKOpt",
    "RerankerOpt",
    "make_index_config",
    "make_ray_config",
]

LibraryOpt = Annotated[
    Optional[Path],
    typer.Option(
        "--library", "-L", envvar="XMR_LIBRARY", help="Library directory [default: $XDG_DATA_HOME/xmr/default]."
    ),
]
CatalogOpt = Annotated[
    str, typer.Option("--catalog-url", help="SQLAlchemy URL of the catalog [default: SQLite in the library].")
]
ModelOpt = Annotated[
    Optional[str],
    typer.Option(
        "--model",
        "-m",
        help="open_clip name, local-dir:PATH or a model folder [default: the library's model, else ViT-B-32].",
    ),
]
PretrainedOpt = Annotated[
    Optional[str],
    typer.Option("--pretrained", help="Pretrained tag or weights file for --model [default: laion2b_s34b_b79k]."),
]
DeviceOpt = Annotated[str, typer.Option("--device", help="auto, cpu, cuda or mps.")]
JsonOpt = Annotated[bool, typer.Option("--json", help="Machine-readable JSON output.")]
RerankerOpt = Annotated[
    str, typer.Option("--reranker", help="Rescore the top results: a folder from train-reranker, or blip:HUB_NAME.")
]
CheckpointOpt = Annotated[
    float,
    typer.Option(
        "--checkpoint-seconds",
        min=0.0,
        help="Write a resumable checkpoint at least this often (0: every step); a rerun resumes with the same value.",
    ),
]
DEFAULT_RERANK_K = 50  # == retrieval.rerank.base.DEFAULT_RERANK_K (not imported: --help stays light)
RerankKOpt = Annotated[
    int, typer.Option("--rerank-k", min=1, help="How many dual-encoder results the reranker rescores.")
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
