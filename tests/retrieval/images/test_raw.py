"""RAW files through their embedded preview, on DNGs written by hand (tests/helpers/raw_files.py).

What is and is not covered: LibRaw (rawpy) reads these DNGs as RAW files, finds the JPEG
preview and demosaics the sensor data; files from real cameras (CR2, CR3, NEF, ARW, RAF,
ORF, RW2) cannot be downloaded here, so their makers' preview layouts are not tested.
"""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from retrieval import DuplicateConfig, ImageDecodeError
from retrieval.images import raw as raw_module
from retrieval.images.decode import decode_bytes, decode_file, image_extensions
from retrieval.images.phash import hamming, perceptual_hash
from retrieval.images.thumbnails import thumbnail_bytes
from tests.helpers.raw_files import make_dng

pytest.importorskip("rawpy", reason="RAW files need the raw extra: pip install -e '.[raw]'")


@pytest.fixture
def preview(photo_source: Path) -> Image.Image:
    return Image.open(photo_source / "astronaut.jpg").convert("RGB").resize((300, 200))


def test_dng_decodes_through_its_preview_with_the_raw_metadata(tmp_path: Path, preview: Image.Image) -> None:
    path = make_dng(tmp_path / "IMG_0001.DNG", preview, sensor=(96, 64), make="Canon", model="Canon EOS R5")
    assert ".dng" in image_extensions()
    decoded = decode_file(path)
    assert decoded.image.size == (300, 200) and decoded.image.mode == "RGB"
    difference = np.abs(np.asarray(decoded.image, np.int16) - np.asarray(preview, np.int16)).mean()
    assert difference < 4  # the preview's pixels (one JPEG round trip)
    meta = decoded.meta
    assert (meta.width, meta.height, meta.format) == (96, 64, "DNG")  # the sensor's size
    assert meta.camera == "Canon EOS R5" and str(meta.captured_at) == "2023-07-14 09:30:00"
    assert hamming(meta.phash, perceptual_hash(preview)) <= 4


def test_orientation_of_the_raw_turns_its_preview(tmp_path: Path, preview: Image.Image) -> None:
    path = make_dng(tmp_path / "turned.dng", preview, sensor=(96, 64), orientation=6)
    decoded = decode_file(path)
    assert decoded.image.size == (200, 300)  # turned upright
    assert (decoded.meta.width, decoded.meta.height, decoded.meta.orientation) == (64, 96, 6)
    upright = preview.transpose(Image.Transpose.ROTATE_270)
    assert hamming(decoded.meta.phash, perceptual_hash(upright)) <= 4


def test_bytes_need_the_name_to_be_read_as_raw(tmp_path: Path, preview: Image.Image) -> None:
    data = make_dng(tmp_path / "a.dng", preview).read_bytes()
    assert decode_bytes(data, name="a.dng").image.size == (300, 200)
    thumb = Image.open(io.BytesIO(thumbnail_bytes(data, 64, "JPEG", name="/x/a.DNG")))
    assert max(thumb.size) == 64


def test_damaged_raw_and_missing_rawpy_are_plain_failures(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    bad = tmp_path / "broken.nef"
    bad.write_bytes(b"II*\0" + b"\0" * 64)
    with pytest.raises(ImageDecodeError, match="LibRaw"):
        decode_file(bad)
    monkeypatch.setattr(raw_module, "raw_available", lambda: False)
    with pytest.raises(ImageDecodeError, match=r"xmr\[raw\]"):
        decode_file(bad)


def test_library_indexes_raw_files_and_finds_their_jpeg(open_library, tmp_path: Path, photo_source: Path) -> None:  # noqa: ANN001
    folder = tmp_path / "shoot"
    folder.mkdir()
    full = Image.open(photo_source / "coffee.png").convert("RGB")
    make_dng(folder / "DSC_0001.dng", full, sensor=(1200, 800))
    full.resize((300, 200)).save(folder / "DSC_0001.jpg", quality=85)  # the camera's JPEG beside it
    lib = open_library()
    report = lib.index([folder])
    assert (report.added, report.failed, report.raw_skipped) == (2, 0, ())
    record = lib.catalog.image_by_path(str(folder / "DSC_0001.dng"))
    assert record.format == "DNG" and (record.width, record.height) == (1200, 800)
    groups = lib.duplicates(DuplicateConfig(tiers=("near",), near_score=-1.0)).groups
    (group,) = groups
    assert group.keeper.path.endswith(".dng") and "1200x800" in group.reason  # the RAW has the most pixels
