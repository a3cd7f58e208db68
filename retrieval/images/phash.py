"""A perceptual hash of a decoded image (DCT "pHash"), computed from pixels xmr decodes anyway.

The upright image is averaged down to a 32x32 grey square (box filter: each output pixel is
the mean of the input pixels it covers), its 2-D DCT is taken, and the 63 lowest-frequency
coefficients of the top-left 8x8 block (the DC term left out: it only says how bright the
picture is) are compared with their median. The 63 bits are an int below 2**63, so a
signed 64-bit catalog column holds it as is. Re-encoding, resizing, EXIF rotation
(decoding turns the image upright first), format changes and stripped metadata move few bits
(0-6 on photos); a 2-10% crop moves 0-22 (median 10); a second shot of the scene about 20;
distinct photos differ in 18 or more, typically 32 (measured in benchmarks/bench_duplicates.py).

Only numpy and Pillow here: the GPU decode path averages its tensors to the same 32x32
grey square and calls :func:`hash_grey`.
"""

from __future__ import annotations

import numpy as np
from PIL import Image

__all__ = ["HASH_BITS", "HASH_SIDE", "hamming", "hamming_to", "hash_grey", "perceptual_hash"]

HASH_SIDE = 32  # the grey square the DCT is taken of
_BLOCK = 8  # the low-frequency block kept: 8x8 coefficients, less the DC term
HASH_BITS = _BLOCK * _BLOCK - 1


def _dct_matrix(n: int) -> np.ndarray:
    """The orthonormal DCT-II matrix ``(n, n)``: ``D @ x`` transforms a column."""
    k = np.arange(n, dtype=np.float64)[:, None]
    i = np.arange(n, dtype=np.float64)[None, :]
    matrix = np.cos(np.pi * (2 * i + 1) * k / (2 * n)) * np.sqrt(2.0 / n)
    matrix[0] /= np.sqrt(2.0)
    return matrix


_DCT = _dct_matrix(HASH_SIDE)[:_BLOCK]  # (8, 32): only the rows of the coefficients kept
_WEIGHTS = 1 << np.arange(HASH_BITS, dtype=np.uint64)


def perceptual_hash(image: Image.Image) -> int:
    """The 63-bit perceptual hash of an upright RGB (or any mode) PIL image."""
    square = image.convert("RGB").resize((HASH_SIDE, HASH_SIDE), Image.Resampling.BOX)
    return hash_grey(np.asarray(square.convert("L"), dtype=np.float64))


def hash_grey(grey: np.ndarray) -> int:
    """The hash of a ``(32, 32)`` grey square (0..255): the bits of the 63 low DCT
    coefficients above their median, coefficient ``(u, v)`` (row-major, DC skipped) at bit ``8u + v - 1``."""
    grey = np.asarray(grey, dtype=np.float64).reshape(HASH_SIDE, HASH_SIDE)
    low = (_DCT @ grey @ _DCT.T).ravel()[1:]  # (63,)
    bits = low > np.median(low)
    return int(_WEIGHTS[bits].sum())


def hamming(a: int, b: int) -> int:
    """How many of the bits of two hashes differ."""
    return (int(a) ^ int(b)).bit_count()


def hamming_to(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Bitwise distances ``(n,)`` between two ``(n,)`` int64 arrays of hashes, pair by pair."""
    x = np.bitwise_xor(np.asarray(a, np.int64), np.asarray(b, np.int64)).view(np.uint64)
    count = np.zeros(x.shape, np.int64)
    for shift in range(0, 64, 8):  # a byte at a time through a 256-entry table
        count += _POPCOUNT[((x >> np.uint64(shift)) & np.uint64(0xFF)).astype(np.intp)]
    return count


_POPCOUNT = np.array([bin(i).count("1") for i in range(256)], dtype=np.int64)
