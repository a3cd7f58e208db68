"""Reranking: a model that reads a text and an image together rescores the dual top-K.

Light to import: torch-backed parts live in submodules loaded on use.
"""

from retrieval.rerank.base import DEFAULT_RERANK_K, ImageRef, Reranker

__all__ = ["DEFAULT_RERANK_K", "ImageRef", "Reranker"]
