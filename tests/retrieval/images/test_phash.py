"""The perceptual hash: against a brute-force DCT, under the changes it must survive, on both decode paths."""

from __future__ import annotations

import io
import itertools
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from retrieval.images.decode import DecodeConfig, decode_bytes, decode_file
from retrieval.images.gpu_decode import Preprocessor, grey_squares, pixel_spec, probe_file
from retrieval.images.phash import HASH_BITS, hamming, hamming_to, hash_grey, perceptual_hash


def _brute_hash(grey: np.ndarray) -> int:
    """The DCT-II written out as its double sum, coefficient by coefficient."""
    n = grey.shape[0]
    x = np.arange(n)

    def alpha(u: int) -> float:
        return np.sqrt(1 / n) if u == 0 else np.sqrt(2 / n)

    coeffs = []
    for u, v in itertools.product(range(8), range(8)):
        basis = np.outer(np.cos(np.pi * (2 * x + 1) * u / (2 * n)), np.cos(np.pi * (2 * x + 1) * v / (2 * n)))
        coeffs.append(alpha(u) * alpha(v) * float((grey * basis).sum()))
    ac = np.array(coeffs[1:])
    return sum(1 << i for i, bit in enumerate(ac > np.median(ac)) if bit)


def _encoded(image: Image.Image, fmt: str, **options: object) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, fmt, **options)
    return buffer.getvalue()


def test_hash_matches_brute_force_dct() -> None:
    rng = np.random.default_rng(0)
    for _ in range(5):
        grey = rng.integers(0, 256, (32, 32)).astype(np.float64)
        assert hash_grey(grey) == _brute_hash(grey)
    assert HASH_BITS == 63


def test_hamming_counts_bits_like_python() -> None:
    rng = np.random.default_rng(1)
    a = rng.integers(0, 2**63, 200, dtype=np.int64)
    b = rng.integers(0, 2**63, 200, dtype=np.int64)
    assert hamming_to(a, b).tolist() == [bin(int(x) ^ int(y)).count("1") for x, y in zip(a, b)]
    assert hamming(5, 3) == 2


def test_copies_keep_their_hash_and_distinct_photos_do_not(photo_source: Path) -> None:
    images = {p.stem: decode_file(p).image for p in sorted(photo_source.iterdir())}
    hashes = {name: perceptual_hash(image) for name, image in images.items()}
    assert all(0 <= h < 2**63 for h in hashes.values())
    for name, image in images.items():
        w, h = image.size
        variants = {
            "jpeg q50": decode_bytes(_encoded(image, "JPEG", quality=50)),
            "png": decode_bytes(_encoded(image, "PNG")),
            "quarter size": decode_bytes(_encoded(image.resize((w // 4, h // 4)), "JPEG", quality=90)),
        }
        for kind, decoded in variants.items():
            assert hamming(decoded.meta.phash, hashes[name]) <= 6, (name, kind)
    for a, b in itertools.combinations(hashes, 2):
        assert hamming(hashes[a], hashes[b]) >= 16, (a, b)


def test_exif_rotated_file_hashes_like_the_upright_picture(photo_source: Path) -> None:
    upright = decode_file(photo_source / "astronaut.jpg").image
    stored = upright.transpose(Image.Transpose.ROTATE_90)  # what a camera writes with orientation 6
    exif = Image.Exif()
    exif[0x0112] = 6
    rotated = decode_bytes(_encoded(stored, "JPEG", quality=92, exif=exif))
    assert rotated.image.size == upright.size
    assert hamming(rotated.meta.phash, perceptual_hash(upright)) <= 2
    assert hamming(perceptual_hash(stored), perceptual_hash(upright)) > 16  # the turn matters without EXIF


def test_decode_config_can_skip_the_hash(photo_source: Path) -> None:
    assert decode_file(photo_source / "coffee.png", DecodeConfig(perceptual_hash=False)).meta.phash is None
    assert decode_file(photo_source / "coffee.png").meta.phash is not None


def test_batched_decode_path_hashes_like_the_cpu_path(tiny_encoder, photos: Path) -> None:  # noqa: ANN001
    jpegs = sorted(photos.rglob("*.jpg"))
    spec = pixel_spec(tiny_encoder.transform)
    probes = [probe_file(p, str(p), DecodeConfig(), tiny_encoder.preprocess) for p in jpegs]
    assert all(p.jpeg is not None for p in probes)  # the batched lane, not the CPU fallback
    done, _ = Preprocessor(spec, "cpu", DecodeConfig(), tiny_encoder.preprocess)(probes)
    for path, probe in zip(jpegs, done):
        assert probe.meta.phash is not None
        assert hamming(probe.meta.phash, decode_file(path).meta.phash) <= 4, path


def test_grey_squares_match_pillow_on_exact_multiples() -> None:
    rng = np.random.default_rng(2)
    pixels = rng.integers(0, 256, (64, 96, 3), dtype=np.uint8)
    expected = np.asarray(Image.fromarray(pixels).resize((32, 32), Image.Resampling.BOX).convert("L"), np.float64)
    got = grey_squares(torch.from_numpy(pixels).permute(2, 0, 1)[None])[0]
    assert np.abs(got - expected).max() <= 1


@pytest.mark.parametrize("mode", ["L", "RGBA", "P"])
def test_any_mode_hashes(mode: str) -> None:
    image = Image.new("RGB", (40, 30), (10, 200, 30)).convert(mode)
    assert 0 <= perceptual_hash(image) < 2**63
