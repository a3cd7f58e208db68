"""Decoding costs bounded memory whatever a file holds (issue 23, item 8).

A huge file named .jpg is refused by its size before a byte is read; a small PNG that
declares 13000 x 13000 pixels is refused by its header before a pixel is decoded. Peak
memory is measured in a fresh process (``VmHWM``), so the test sees what a user would.
"""

from __future__ import annotations

import hashlib
import struct
import subprocess
import sys
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from retrieval.errors import ImageDecodeError
from retrieval.images.decode import DecodeConfig, decode_file, hash_file
from tests.helpers.paths import REPO

_BUDGET_MB = 350  # peak RSS of the child: Python, numpy and Pillow take ~60-120 MB


def _png_of_zeros(path: Path, side: int) -> Path:
    """A real, complete RGB PNG of ``side`` x ``side`` black pixels, streamed out (a few hundred KB)."""
    compressor = zlib.compressobj(9)
    row = b"\x00" * (1 + 3 * side)  # filter byte + pixels
    idat = b"".join(compressor.compress(row) for _ in range(side)) + compressor.flush()

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    header = struct.pack(">IIBBBBB", side, side, 8, 2, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", idat) + chunk(b"IEND", b""))
    return path


def _decode_in_child(path: Path) -> tuple[str, int]:
    """``decode_file(path)`` in a fresh interpreter: (its outcome, its peak RSS in MB)."""
    # VmHWM, not ru_maxrss: Linux carries ru_maxrss over fork and exec, so a child of a big
    # pytest process would report the parent's size.
    code = (
        "import sys\n"
        "from retrieval.images.decode import decode_file\n"
        "try:\n"
        "    outcome = 'decoded %dx%d' % decode_file(sys.argv[1]).image.size\n"
        "except Exception as exc:\n"
        "    outcome = '%s: %s' % (type(exc).__name__, exc)\n"
        "print(outcome)\n"
        "peak = [line for line in open('/proc/self/status') if line.startswith('VmHWM:')][0]\n"
        "print(int(peak.split()[1]) // 1024)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code, str(path)], cwd=REPO, capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr
    outcome, peak = done.stdout.strip().splitlines()
    return outcome, int(peak)


@pytest.mark.skipif(sys.platform != "linux", reason="/proc/self/status and sparse files: Linux")
def test_a_huge_file_named_jpg_is_refused_before_it_is_read(tmp_path: Path) -> None:
    path = tmp_path / "huge.jpg"
    with open(path, "wb") as handle:  # sparse: takes no disk, reads as 1.5 GB of zeros
        handle.truncate(1536 * 2**20)
    outcome, peak = _decode_in_child(path)
    assert outcome == (
        "ImageDecodeError: file is 1,536 MiB, over the 512 MiB limit (DecodeConfig.max_file_bytes); not read"
    )
    assert peak < _BUDGET_MB, f"{peak} MB to refuse a file"


@pytest.mark.skipif(sys.platform != "linux", reason="/proc/self/status: Linux")
def test_a_small_png_declaring_13000_squared_pixels_is_refused_from_its_header(tmp_path: Path) -> None:
    path = _png_of_zeros(tmp_path / "bomb.png", 13_000)
    assert path.stat().st_size < 1_000_000  # the amplification: < 1 MB on disk, 507 MB of pixels
    outcome, peak = _decode_in_child(path)
    assert outcome.startswith("ImageDecodeError: image is 13000x13000 = 169.0 megapixels and PNG decodes at full size")
    assert "DecodeConfig.max_decoded_pixels" in outcome
    assert peak < _BUDGET_MB, f"{peak} MB to refuse a PNG bomb"


def test_jpegs_over_the_decoding_limit_still_decode_at_draft_size(tmp_path: Path) -> None:
    """Only the pixels decoded count: a JPEG shrinks by draft before decoding, so its declared
    size may be far over ``max_decoded_pixels``."""
    path = tmp_path / "big.jpg"
    Image.new("RGB", (4000, 3000), (10, 20, 30)).save(path, quality=80)
    config = DecodeConfig(max_decoded_pixels=1_000_000)
    decoded = decode_file(path, config)
    assert decoded.meta.width == 4000 and decoded.image.size[0] * decoded.image.size[1] <= 1_000_000
    png = tmp_path / "big.png"
    Image.new("RGB", (1200, 1000)).save(png)
    with pytest.raises(ImageDecodeError, match="1.2 megapixels and PNG decodes at full size: over the 1 megapixel"):
        decode_file(png, config)


def test_the_file_size_limit_is_a_setting_and_the_hash_covers_the_whole_file(tmp_path: Path) -> None:
    path = tmp_path / "noise.png"
    Image.fromarray(np.random.default_rng(0).integers(0, 256, (700, 700, 3), dtype=np.uint8)).save(path)
    data = path.read_bytes()
    assert len(data) > 2**20  # more than one hashing chunk
    decoded = decode_file(path)
    assert decoded.content_hash == hashlib.blake2b(data, digest_size=16).hexdigest() == hash_file(path)
    assert decoded.status is not None and decoded.status.st_size == len(data)
    with pytest.raises(ImageDecodeError, match=r"over the 0\.5 MiB limit \(DecodeConfig\.max_file_bytes\)"):
        decode_file(path, DecodeConfig(max_file_bytes=2**19))
