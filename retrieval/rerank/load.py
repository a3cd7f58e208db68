"""Pick and load a reranker backend from what ``--reranker`` names."""

from __future__ import annotations

from pathlib import Path

from index.tokens import TokenCache
from retrieval.errors import RerankerError
from retrieval.models.encoder import ClipEncoder, Encoder
from retrieval.rerank.base import Reranker

BLIP_PREFIX = "blip:"
RERANKER_CONFIG = "reranker.json"  # == retrieval.rerank.model.CONFIG_NAME (not imported: that imports torch)


def check_reranker_spec(spec: str) -> None:
    """Refuse a ``--reranker`` that names no reranker, in milliseconds and before any model loads.

    Raises:
        RerankerError: no such folder, a file, or a folder without ``reranker.json``.
    """
    if spec.startswith(BLIP_PREFIX):
        if not spec[len(BLIP_PREFIX) :].strip():
            raise RerankerError("--reranker blip: needs a model name, e.g. blip:Salesforce/blip-itm-base-coco.")
        return
    folder = Path(spec).expanduser()
    train = f"train one with `xmr train-reranker PAIRS --model M --out {spec}`"
    if not folder.exists():
        raise RerankerError(f"no such folder: {spec} (a reranker is a folder written by train-reranker; {train}).")
    if not folder.is_dir():
        raise RerankerError(f"{spec} is a file; a reranker is a folder written by train-reranker ({train}).")
    if not (folder / RERANKER_CONFIG).is_file():
        raise RerankerError(f"{spec} holds no reranker ({RERANKER_CONFIG} missing); {train}.")


def load_for_library(spec: str, encoder: Encoder, library_root: Path, device: str = "auto") -> Reranker:
    """``blip:NAME`` -> the BLIP ITM backend; anything else -> a folder from ``xmr train-reranker``
    (checked against ``encoder``; reads the library's token cache when there is one).

    Raises:
        RerankerError, RerankerMismatchError, CorruptFileError: see :func:`retrieval.rerank.model.load_reranker`.
        MissingDependencyError: ``blip:`` without the ``[blip]`` extra.
        RerankerError: a reranker folder with an encoder that is not the torch one (it reads its tokens).
    """
    if spec.startswith(BLIP_PREFIX):
        from retrieval.rerank.blip import load_blip_reranker

        return load_blip_reranker(spec[len(BLIP_PREFIX) :], device)
    from retrieval.rerank.live import TokenReranker

    cache = TokenCache.open(library_root) if TokenCache.exists(library_root) else None
    if not isinstance(encoder, ClipEncoder):  # a trained reranker reads the torch model's token features
        raise RerankerError(
            f"the reranker {spec} reads the token features of the torch (open_clip) encoder, and this library's "
            f"encoder is a {type(encoder).__name__}; open the library with the torch encoder, or use a blip: reranker."
        )
    return TokenReranker.load(spec, encoder, cache)
