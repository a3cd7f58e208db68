"""A trained xmr reranker bound to a library's encoder: reranking in the search path.

Candidate images' tokens come from the library's token cache when it has them (no
decoding at all); the rest are decoded from their files and encoded once more. Query
texts and query images are encoded on the spot.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

from index.tokens import TokenCache
from retrieval.models.encoder import ClipEncoder
from retrieval.models.features import image_tokens, text_tokens
from retrieval.rerank.base import ImageRef
from retrieval.rerank.model import RerankerNet, load_reranker


class TokenReranker:
    """Scores (text, image) pairs with a trained :class:`RerankerNet` over encoder tokens."""

    def __init__(self, name: str, net: RerankerNet, encoder: ClipEncoder, cache: TokenCache | None = None) -> None:
        self.name = name
        self.net = net
        self.encoder = encoder
        self.cache = cache
        self.stats = {"cached": 0, "encoded": 0}  # where candidate tokens came from (for reports)

    @classmethod
    def load(cls, folder: str | Path, encoder: ClipEncoder, cache: TokenCache | None = None) -> TokenReranker:
        """Load a reranker folder for ``encoder`` (refusing one trained on another encoder)."""
        saved = load_reranker(folder, encoder.identity)
        shape = saved.net.config.tokens
        if cache is not None and cache.shape != (shape.image, shape.image_width):
            cache = None  # made by an older layout of this encoder: encode instead
        return cls(str(folder), saved.net, encoder, cache)

    def rerank_images(self, text: str, images: Sequence[ImageRef], dual: np.ndarray) -> np.ndarray:
        """Match probabilities ``(n,)`` of ``text`` with each candidate image."""
        if not images:
            return np.zeros(0, np.float32)
        tokens, ok = self.image_tokens(images)  # (n, T, W)
        words = text_tokens(self.encoder, [text])
        n = len(images)
        return self._probabilities(np.repeat(words.states, n, 0), np.repeat(words.mask, n, 0), tokens, dual) * ok

    def rerank_texts(self, image: ImageRef, texts: Sequence[str], dual: np.ndarray) -> np.ndarray:
        """Match probabilities ``(n,)`` of ``image`` with each candidate text."""
        if not texts:
            return np.zeros(0, np.float32)
        tokens, ok = self.image_tokens([image])  # (1, T, W)
        words = text_tokens(self.encoder, list(texts))
        return self._probabilities(words.states, words.mask, np.repeat(tokens, len(texts), 0), dual) * ok[0]

    def image_tokens(self, images: Sequence[ImageRef]) -> tuple[np.ndarray, np.ndarray]:
        """Token grids ``(n, T, W)`` float16 (from the cache by content hash, else encoded) and
        ``(n,)`` flags, False for a file that can no longer be read (its probability becomes 0)."""
        shape = self.net.config.tokens
        out = np.zeros((len(images), shape.image, shape.image_width), np.float16)
        found = np.zeros(len(images), dtype=bool)
        if self.cache is not None and any(ref.content_hash for ref in images):
            out, found = self.cache.get([ref.content_hash for ref in images])
        ok = np.ones(len(images), dtype=bool)
        missing = [i for i in range(len(images)) if not found[i]]
        if missing:
            out[missing], ok[missing] = self._encode([images[i] for i in missing])
        self.stats["cached"] += int(found.sum())
        self.stats["encoded"] += len(missing)
        return out, ok

    def _encode(self, images: Sequence[ImageRef]) -> tuple[np.ndarray, np.ndarray]:
        from retrieval.errors import ImageDecodeError
        from retrieval.images.decode import decode_file, to_rgb

        size = self.encoder.image_size
        pixels, ok = [], []
        for ref in images:
            try:
                if ref.image is not None:
                    pil = to_rgb(ref.image)
                elif ref.path is not None:
                    pil = decode_file(ref.path).image
                else:  # neither: scored as unreadable, like a broken file
                    raise TypeError(f"nothing to decode in {ref!r}")
                pixels.append(self.encoder.preprocess(pil))
                ok.append(True)
            except (ImageDecodeError, OSError, TypeError):  # vanished or broken since indexing
                pixels.append(torch.zeros(3, size, size))
                ok.append(False)
        return image_tokens(self.encoder, torch.stack(pixels))[1], np.array(ok)

    def _probabilities(self, states: np.ndarray, mask: np.ndarray, tokens: np.ndarray, dual: np.ndarray) -> np.ndarray:
        with torch.inference_mode():
            logits = self.net(
                torch.from_numpy(np.ascontiguousarray(states)),
                torch.from_numpy(np.ascontiguousarray(mask)),
                torch.from_numpy(tokens),
                torch.from_numpy(np.asarray(dual, np.float32)),
            )
        return torch.sigmoid(logits.float()).numpy()
