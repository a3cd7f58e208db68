"""Pick and load a reranker backend from what ``--reranker`` names."""

from __future__ import annotations

from pathlib import Path

from index.tokens import TokenCache
from retrieval.errors import RerankerError
from retrieval.models.encoder import ClipEncoder, Encoder
from retrieval.rerank.base import Reranker

BLIP_PREFIX = "blip:"


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
