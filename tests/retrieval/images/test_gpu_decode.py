"""The batched (GPU) decode path against the CPU decode path, run on the CPU.

torchvision decodes the batches with libjpeg-turbo when the device is "cpu", so every
step but nvJPEG itself is exercised here; tests marked ``cuda`` repeat the comparison on
a GPU and skip without one.
"""

from __future__ import annotations

import io
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from retrieval import IngestConfig
from retrieval.images.decode import DecodeConfig, decode_file
from retrieval.images.gpu_decode import (
    Preprocessor,
    Probe,
    each,
    iter_batches,
    orient,
    pixel_spec,
    probe_file,
)
from tests.helpers.files import add_broken_files, make_jpeg

CUDA = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")


def _no_hash(meta):  # noqa: ANN001, ANN202
    return replace(meta, phash=None)


def _cpu_pixels(encoder, path: Path) -> torch.Tensor:  # noqa: ANN001
    return encoder.preprocess(decode_file(path).image)


def _gpu_path_pixels(encoder, paths: list[Path], device: str = "cpu", decode=None) -> tuple[list[Probe], torch.Tensor]:  # noqa: ANN001
    spec = pixel_spec(encoder.transform)
    probes = [probe_file(p, str(p), DecodeConfig(), encoder.preprocess) for p in paths]
    return Preprocessor(spec, device, DecodeConfig(), encoder.preprocess, decode)(probes)


def test_pixel_spec_reads_open_clip_preprocess(tiny_encoder) -> None:  # noqa: ANN001
    import open_clip

    spec = pixel_spec(tiny_encoder.transform)
    assert spec is not None and spec.resize == (32,) and spec.crop == (32, 32)
    assert spec.mean == (0.5, 0.5, 0.5) and spec.interpolation == "bicubic"
    squash = open_clip.image_transform(64, is_train=False, resize_mode="squash", interpolation="bilinear")
    assert pixel_spec(squash).resize == (64, 64) and pixel_spec(squash).crop is None
    assert pixel_spec(open_clip.image_transform(64, is_train=False, resize_mode="longest")) is None  # pads: CPU only
    assert pixel_spec(None) is None


def test_batched_path_matches_cpu_preprocess(tiny_encoder, photos: Path, tmp_path: Path) -> None:  # noqa: ANN001
    jpegs = sorted(photos.rglob("*.jpg")) + [
        make_jpeg(tmp_path / "wide.jpg", (301, 97), 1),
        make_jpeg(tmp_path / "small.jpg", (20, 40), 2),
    ]
    probes, pixels = _gpu_path_pixels(tiny_encoder, jpegs)
    assert all(p.jpeg is not None and not p.error for p in probes)  # all took the batch lane
    for path, probe, row in zip(jpegs, probes, pixels):
        cpu = _cpu_pixels(tiny_encoder, path)
        assert row.shape == cpu.shape
        diff = (row - cpu).abs()
        # libjpeg-turbo (torchvision) vs Pillow's libjpeg and float vs fixed-point resampling:
        # a few 8-bit levels at most, i.e. about 0.03 after dividing by std 0.5.
        assert float(diff.mean()) < 0.02 and float(diff.max()) < 0.15, path.name
        # The perceptual hash is made from each path's own decode: a few bits may differ (test_phash.py).
        assert _no_hash(probe.meta) == _no_hash(decode_file(path).meta)
        assert probe.content_hash == decode_file(path).content_hash


@pytest.mark.parametrize("orientation", range(1, 9))
def test_exif_orientation_applied_like_pillow(tiny_encoder, tmp_path: Path, orientation: int) -> None:  # noqa: ANN001
    path = make_jpeg(tmp_path / "o.jpg", (120, 64), 3, orientation)
    probes, pixels = _gpu_path_pixels(tiny_encoder, [path])
    assert probes[0].orientation == orientation and _no_hash(probes[0].meta) == _no_hash(decode_file(path).meta)
    assert float((pixels[0] - _cpu_pixels(tiny_encoder, path)).abs().mean()) < 0.02


def test_orient_matches_pillow_transpose() -> None:
    from PIL import ImageOps

    array = np.random.default_rng(0).integers(0, 255, (5, 7, 3), dtype=np.uint8)
    for orientation in range(1, 9):
        image = Image.fromarray(array)
        exif = image.getexif()
        exif[0x0112] = orientation
        buffer = io.BytesIO()
        image.save(buffer, "PNG", exif=exif)
        expected = np.asarray(ImageOps.exif_transpose(Image.open(buffer)))
        got = orient(torch.from_numpy(array).permute(2, 0, 1), orientation).permute(1, 2, 0).numpy()
        np.testing.assert_array_equal(got, expected, err_msg=f"orientation {orientation}")


def test_other_files_take_the_cpu_path_with_its_errors(tiny_encoder, photos: Path, tmp_path: Path) -> None:  # noqa: ANN001
    good = sorted(photos.rglob("*.jpg"))[0]
    broken = add_broken_files(tmp_path, good)
    progressive = make_jpeg(tmp_path / "progressive.jpg", (80, 60), 4, progressive=True)
    cmyk = tmp_path / "cmyk.jpg"
    Image.open(good).convert("CMYK").save(cmyk, "JPEG")
    pngs = sorted(photos.rglob("*.png"))
    paths = [*broken.values(), progressive, cmyk, *pngs]
    probes, pixels = _gpu_path_pixels(tiny_encoder, paths)
    for path, probe, row in zip(paths, probes, pixels):
        assert probe.jpeg is None, path.name
        try:
            expected = _cpu_pixels(tiny_encoder, path)
        except Exception as exc:  # noqa: BLE001
            assert probe.error == str(exc), path.name
            continue
        assert not probe.error and torch.equal(row, expected), path.name
    missing = probe_file("k", str(tmp_path / "gone.jpg"), DecodeConfig(), tiny_encoder.preprocess)
    assert missing.error.startswith("cannot read file:")


def test_refused_batch_retried_file_by_file(tiny_encoder, photos: Path) -> None:  # noqa: ANN001
    from torchvision.io import ImageReadMode, decode_jpeg

    jpegs = sorted(photos.rglob("*.jpg"))
    bad = probe_file("k", str(jpegs[0]), DecodeConfig(), tiny_encoder.preprocess).jpeg
    calls = []

    def picky(batch: list[torch.Tensor], device: str) -> list[torch.Tensor]:
        calls.append(len(batch))
        if any(t.data_ptr() == bad.data_ptr() for t in batch) or len(batch) > 1 and len(calls) == 1:
            raise RuntimeError("nvjpeg refused the batch")
        return decode_jpeg(batch, mode=ImageReadMode.RGB, device=device)

    spec = pixel_spec(tiny_encoder.transform)
    probes = [probe_file(p, str(p), DecodeConfig(), tiny_encoder.preprocess) for p in jpegs]
    probes[0] = Probe(jpegs[0], probes[0].content_hash, probes[0].meta, bad, None)
    probes, pixels = Preprocessor(spec, "cpu", DecodeConfig(), tiny_encoder.preprocess, picky)(probes)
    assert calls[0] == len(jpegs) and calls[1:] == [1] * len(jpegs)
    assert probes[0].jpeg is None and probes[0].pixels is not None  # decoded on the CPU instead
    for path, row in zip(jpegs, pixels):
        assert float((row - _cpu_pixels(tiny_encoder, path)).abs().mean()) < 0.02


def test_iter_batches_keeps_order_and_stops_cleanly(tiny_encoder, photos: Path) -> None:  # noqa: ANN001
    paths = sorted(photos.rglob("*.*")) * 5
    items = [(i, str(p)) for i, p in enumerate(paths)]
    spec = pixel_spec(tiny_encoder.transform)
    prep = Preprocessor(spec, "cpu", DecodeConfig(), tiny_encoder.preprocess)

    def probe(key, path):  # noqa: ANN001, ANN202
        return probe_file(key, path, DecodeConfig(), tiny_encoder.preprocess)

    for chunk in (1, 3, 8):  # chunks that do and do not divide the batch
        batches = list(iter_batches(items, each(probe), prep, batch=4, workers=3, prefetch=2, chunk=chunk))
        assert [p.key for probes, _ in batches for p in probes] == list(range(len(paths)))
        assert [len(probes) for probes, _ in batches] == [4] * (len(paths) // 4) + (
            [len(paths) % 4] if len(paths) % 4 else []
        )
    stream = iter_batches(items, each(probe), prep, batch=2, workers=2, prefetch=1)
    next(stream)
    stream.close()  # the decoder thread must wind down, not hang


def test_library_index_same_vectors_both_paths(open_library, photos: Path, tmp_path: Path) -> None:  # noqa: ANN001
    good = sorted(photos.rglob("*.jpg"))[0]
    add_broken_files(photos, good)
    make_jpeg(photos / "rotated.jpg", (90, 50), 5, 6)
    reports, vectors = {}, {}
    for mode in ("off", "on"):
        lib = open_library(tmp_path / f"lib-{mode}")
        reports[mode] = lib.index([photos], config=IngestConfig(batch_size=4, gpu_decode=mode, gpu_batch_size=4))
        images = lib.catalog.images(lib.images.index.ids().tolist())
        ids, matrix = lib.catalog.vectors_since("images", -1, lib.identity.embed_dim)
        vectors[mode] = {images[int(i)].path: v for i, v in zip(ids, matrix)}
    assert reports["on"].added == reports["off"].added == len(vectors["off"]) > 0
    assert sorted(reports["on"].failures) == sorted(reports["off"].failures) and reports["on"].failed == 4
    assert vectors["on"].keys() == vectors["off"].keys()
    for path, v in vectors["off"].items():
        assert float(v @ vectors["on"][path]) > 0.99, path


def test_gpu_decode_option_is_checked() -> None:
    with pytest.raises(ValueError, match="gpu_decode"):
        IngestConfig(gpu_decode="yes")


@CUDA
def test_cuda_decode_matches_cpu_preprocess(tiny_model_dir: Path, photos: Path, tmp_path: Path) -> None:
    from retrieval.models.encoder import load_encoder
    from retrieval.models.specs import ModelSpec

    encoder = load_encoder(ModelSpec(f"local-dir:{tiny_model_dir}"), device="cuda")
    jpegs = sorted(photos.rglob("*.jpg")) + [make_jpeg(tmp_path / f"o{o}.jpg", (120, 64), o, o) for o in range(1, 9)]
    probes, pixels = _gpu_path_pixels(encoder, jpegs, device="cuda")
    assert pixels.is_cuda and all(p.jpeg is not None for p in probes)
    cpu = torch.stack([_cpu_pixels(encoder, p) for p in jpegs])
    assert float((pixels.cpu() - cpu).abs().mean()) < 0.02
    gpu_vectors, cpu_vectors = encoder.encode_images(pixels), encoder.encode_images(cpu)
    assert float(np.min(np.sum(gpu_vectors * cpu_vectors, axis=1))) > 0.99
