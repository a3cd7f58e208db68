"""Pick and load a reranker backend from what ``--reranker`` names."""

from __future__ import annotations

from pathlib import Path

from index.tokens import TokenCache
from retrieval.models.encoder import ClipEncoder
from retrieval.rerank.base import Reranker

BLIP_PREFIX = "blip:"


def load_for_library(spec: str, encoder: ClipEncoder, library_root: Path, device: str = "auto") -> Reranker:
    """``blip:NAME`` -> the BLIP ITM backend; anything else -> a folder from ``xmr train-reranker``
    (checked against ``encoder``; reads the library's token cache when there is one).

    Raises:
        RerankerError, RerankerMismatchError, CorruptFileError: see :func:`retrieval.rerank.model.load_reranker`.
        MissingDependencyError: ``blip:`` without the ``[blip]`` extra.
    """
    if spec.startswith(BLIP_PREFIX):
        from retrieval.rerank.blip import load_blip_reranker

        return load_blip_reranker(spec[len(BLIP_PREFIX) :], device)
    from retrieval.rerank.live import TokenReranker

    cache = TokenCache.open(library_root) if TokenCache.exists(library_root) else None
    return TokenReranker.load(spec, encoder, cache)
