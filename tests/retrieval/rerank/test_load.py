"""Picking a reranker backend for a library's encoder."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pytest

from index.manifest import ModelIdentity
from retrieval.errors import RerankerError
from retrieval.rerank.load import load_for_library


class ArrayEncoder:
    """An encoder of another runtime (the Encoder protocol, numpy pixels): it has no torch tokens."""

    identity = ModelIdentity(arch="fake", pretrained="random", weights_sha256="", embed_dim=4, spec="fake")
    dim = 4
    device = "cpu"

    def preprocess(self, image: object) -> np.ndarray:
        return np.zeros((3, 2, 2), np.float32)

    def stack(self, pixels: Sequence[np.ndarray]) -> np.ndarray:
        return np.stack(pixels)

    def encode_images(self, pixels: np.ndarray) -> np.ndarray:
        return np.eye(len(pixels), 4, dtype=np.float32)

    def encode_texts(self, texts: Sequence[str]) -> np.ndarray:
        return np.eye(len(texts), 4, dtype=np.float32)


def test_a_trained_reranker_needs_the_torch_encoder_and_says_so(tmp_path: Path) -> None:
    # Checked before the folder is read: whatever is there, these tokens cannot be made.
    with pytest.raises(RerankerError, match="torch .*encoder.*ArrayEncoder.*blip:"):
        load_for_library(str(tmp_path / "reranker"), ArrayEncoder(), tmp_path)
