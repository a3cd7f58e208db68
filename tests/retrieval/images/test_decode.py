"""Tests for retrieval.images.decode: every image is generated in tmp_path with PIL/numpy/skimage."""

from __future__ import annotations

import hashlib
import importlib.util
import struct
import subprocess
import sys
import warnings
import zlib
from datetime import datetime
from pathlib import Path

import numpy as np
import pytest
from PIL import ExifTags, Image, features
from skimage import data as skdata

from index.errors import XmrError
from retrieval.errors import ImageDecodeError
from retrieval.images import decode as decode_module
from retrieval.images.decode import DecodeConfig, decode_bytes, decode_file, hash_file, image_extensions, image_formats
from tests.helpers.paths import REPO

RED = (255, 0, 0)
BLUE = (0, 0, 255)
WHITE = (255, 255, 255)


def _pixels(img: Image.Image) -> np.ndarray:
    return np.asarray(img).astype(int)  # (H, W, 3)


def _close(actual: np.ndarray, expected: tuple[int, ...], tol: int = 12) -> bool:
    return bool(np.all(np.abs(actual - np.array(expected)) <= tol))


def _opened(path: Path) -> tuple[str, int]:
    """(mode, frame count) as Pillow sees the file, to check the test made what it meant."""
    with Image.open(path) as img:
        return img.mode, getattr(img, "n_frames", 1)


def _photo(width: int, height: int) -> Image.Image:
    """A real photograph (skimage astronaut) resized to width x height."""
    return Image.fromarray(skdata.astronaut()).resize((width, height), Image.Resampling.BILINEAR)


def _exif(**tags: object) -> Image.Exif:
    exif = Image.Exif()
    for name, value in tags.items():
        if name == "DateTimeOriginal":
            exif.get_ifd(ExifTags.IFD.Exif)[ExifTags.Base.DateTimeOriginal] = value
        else:
            exif[ExifTags.Base[name]] = value
    return exif


def _png_with_header(width: int, height: int) -> bytes:
    """A hand-made 8-bit grayscale PNG whose IHDR declares width x height, with a tiny IDAT."""

    def chunk(kind: bytes, body: bytes) -> bytes:
        crc = zlib.crc32(kind + body) & 0xFFFFFFFF
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", crc)

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    idat = zlib.compress(b"\x00" * 64)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", idat) + chunk(b"IEND", b"")


# --- orientation and EXIF metadata -------------------------------------------------------


def test_orientation_6_swaps_size_and_rotates_pixels(tmp_path: Path) -> None:
    # Stored 60x40, red block in the stored top-left corner, blue elsewhere.
    img = Image.new("RGB", (60, 40), BLUE)
    img.paste(RED, (0, 0, 16, 16))
    path = tmp_path / "rotated.jpg"
    img.save(path, quality=95, exif=_exif(Orientation=6))

    decoded = decode_file(path)

    assert decoded.image.size == (40, 60)
    assert (decoded.meta.width, decoded.meta.height) == (40, 60)
    assert decoded.meta.orientation == 6
    px = _pixels(decoded.image)
    # Orientation 6 = rotate 90 degrees clockwise to display: top-left goes to top-right.
    assert _close(px[4, 35], RED)
    assert _close(px[4, 4], BLUE)
    assert _close(px[55, 4], BLUE)


def test_exif_capture_time_camera_and_orientation_are_read(tmp_path: Path) -> None:
    path = tmp_path / "camera.jpg"
    exif = _exif(
        DateTimeOriginal="2021:06:15 10:30:05",
        DateTime="2022:01:01 00:00:00",
        Make="Canon",
        Model="Canon EOS 5D Mark IV",
        Orientation=1,
    )
    _photo(64, 48).save(path, exif=exif)

    meta = decode_file(path).meta

    assert meta.captured_at == datetime(2021, 6, 15, 10, 30, 5)  # Original wins over DateTime
    assert meta.camera == "Canon EOS 5D Mark IV"
    assert meta.orientation == 1
    assert (meta.width, meta.height, meta.format) == (64, 48, "JPEG")


@pytest.mark.parametrize(
    ("make", "model", "expected"),
    [
        ("Canon", "Canon EOS R5", "Canon EOS R5"),
        ("NIKON CORPORATION", "NIKON D750", "NIKON D750"),
        ("Apple", "iPhone 12", "Apple iPhone 12"),
        ("SONY\x00", "  ILCE-7M3  ", "SONY ILCE-7M3"),
        ("Fujifilm", None, "Fujifilm"),
    ],
)
def test_camera_is_make_and_model_without_repeating_the_make(
    tmp_path: Path, make: str, model: str | None, expected: str
) -> None:
    tags = {"Make": make} if model is None else {"Make": make, "Model": model}
    path = tmp_path / "cam.jpg"
    _photo(32, 32).save(path, exif=_exif(**tags))
    assert decode_file(path).meta.camera == expected


def test_capture_time_falls_back_to_datetime_and_rejects_invalid(tmp_path: Path) -> None:
    fallback = tmp_path / "fallback.jpg"
    _photo(32, 32).save(fallback, exif=_exif(DateTime="2019:12:31 23:59:59"))
    invalid = tmp_path / "invalid.jpg"
    _photo(32, 32).save(invalid, exif=_exif(DateTimeOriginal="0000:00:00 00:00:00"))
    plain = tmp_path / "plain.png"
    _photo(32, 32).save(plain)

    assert decode_file(fallback).meta.captured_at == datetime(2019, 12, 31, 23, 59, 59)
    assert decode_file(invalid).meta.captured_at is None
    meta = decode_file(plain).meta
    assert (meta.captured_at, meta.orientation, meta.camera) == (None, None, None)
    assert meta.format == "PNG"


# --- mode conversion ---------------------------------------------------------------------


def test_palette_with_transparency_is_composited_on_white(tmp_path: Path) -> None:
    img = Image.new("P", (8, 8), 0)
    img.putpalette([0, 255, 0] + list(RED) + [0] * (254 * 3))  # index 0 green but transparent
    img.paste(1, (0, 0, 4, 8))  # left half: opaque red
    path = tmp_path / "palette.png"
    img.save(path, transparency=0)
    assert _opened(path)[0] == "P"

    decoded = decode_file(path)

    assert decoded.image.mode == "RGB"
    px = _pixels(decoded.image)
    assert tuple(px[0, 0]) == RED
    assert tuple(px[0, 7]) == WHITE  # transparent green became white, not green or black


def test_rgba_and_la_are_composited_on_white(tmp_path: Path) -> None:
    rgba = np.zeros((4, 3, 4), np.uint8)
    rgba[:, 0] = (255, 0, 0, 0)  # fully transparent red -> white
    rgba[:, 1] = (0, 0, 255, 255)  # opaque blue -> blue
    rgba[:, 2] = (0, 0, 0, 128)  # half-transparent black -> mid grey
    Image.fromarray(rgba).save(tmp_path / "rgba.png")
    Image.fromarray(rgba).convert("LA").save(tmp_path / "la.png")

    px = _pixels(decode_file(tmp_path / "rgba.png").image)
    assert tuple(px[0, 0]) == WHITE
    assert tuple(px[0, 1]) == BLUE
    assert _close(px[0, 2], (127, 127, 127), tol=1)
    la = _pixels(decode_file(tmp_path / "la.png").image)
    assert tuple(la[0, 0]) == WHITE
    assert _close(la[0, 2], (127, 127, 127), tol=1)


def test_cmyk_jpeg_becomes_rgb(tmp_path: Path) -> None:
    path = tmp_path / "cmyk.jpg"
    Image.new("CMYK", (32, 32), (0, 255, 255, 0)).save(path, quality=95)  # pure red in CMYK
    assert _opened(path)[0] == "CMYK"

    decoded = decode_file(path)

    assert decoded.image.mode == "RGB"
    assert decoded.meta.format == "JPEG"
    assert _close(_pixels(decoded.image)[16, 16], RED)


def test_16_bit_grayscale_png_is_scaled_not_clipped(tmp_path: Path) -> None:
    values = np.array([[0, 32768, 65535, 257]], dtype=np.uint16).repeat(4, axis=0)  # (4, 4)
    path = tmp_path / "gray16.png"
    Image.fromarray(values).save(path)
    assert _opened(path)[0] == "I;16"  # Pillow keeps 16 bits for grayscale PNGs

    decoded = decode_file(path)

    assert decoded.image.mode == "RGB"
    row = _pixels(decoded.image)[0]  # (4, 3)
    assert row[:, 0].tolist() == [0, 128, 255, 1]
    assert np.all(row == row[:, :1])  # grey: R == G == B


@pytest.mark.parametrize(
    ("array", "expected"),
    [
        (np.array([[0.0, 0.5, 1.0]], np.float32), [0, 128, 255]),  # F in 0..1
        (np.array([[-2.0, 0.0, 2.0]], np.float32), [0, 128, 255]),  # F stretched
        (np.array([[0, 32768, 65535]], np.int32), [0, 128, 255]),  # I holding 16-bit samples
        (np.array([[-100, 0, 100]], np.int32), [0, 128, 255]),  # I stretched
    ],
)
def test_32_bit_tiffs_are_scaled_to_8_bit(tmp_path: Path, array: np.ndarray, expected: list[int]) -> None:
    path = tmp_path / "deep.tif"
    Image.fromarray(array).save(path)
    assert _opened(path)[0] in ("F", "I")

    decoded = decode_file(path)

    assert decoded.image.mode == "RGB"
    assert _pixels(decoded.image)[0, :, 1].tolist() == expected


@pytest.mark.parametrize("mode", ["L", "1", "P"])
def test_low_depth_modes_become_rgb(tmp_path: Path, mode: str) -> None:
    img = Image.new("RGB", (8, 8), (0, 0, 0))
    img.paste(WHITE, (0, 0, 4, 8))
    path = tmp_path / f"{mode}.png"
    img.convert(mode).save(path)

    px = _pixels(decode_file(path).image)

    assert px.shape == (8, 8, 3)
    assert tuple(px[0, 0]) == WHITE
    assert tuple(px[0, 7]) == (0, 0, 0)


@pytest.mark.parametrize(("suffix", "options"), [(".gif", {}), (".webp", {"lossless": True})])
def test_animated_image_gives_first_frame(tmp_path: Path, suffix: str, options: dict) -> None:
    frames = [Image.new("RGB", (16, 16), color) for color in (RED, (0, 255, 0), BLUE)]
    path = tmp_path / f"anim{suffix}"
    frames[0].save(path, save_all=True, append_images=frames[1:], duration=100, loop=0, **options)
    assert _opened(path)[1] == 3

    decoded = decode_file(path)

    assert decoded.image.mode == "RGB"
    assert _close(_pixels(decoded.image)[8, 8], RED, tol=2)
    assert (decoded.meta.width, decoded.meta.height) == (16, 16)


# --- draft mode --------------------------------------------------------------------------


def test_large_jpeg_is_decoded_in_draft_mode(tmp_path: Path) -> None:
    path = tmp_path / "big.jpg"
    _photo(4000, 3000).save(path, quality=85)

    decoded = decode_file(path)

    width, height = decoded.image.size
    assert width < 4000 and height < 3000  # reduced by draft...
    assert min(width, height) >= DecodeConfig().draft_side  # ...but never below draft_side
    assert width * 3 == height * 4  # aspect ratio kept
    assert (decoded.meta.width, decoded.meta.height) == (4000, 3000)  # full-resolution size
    full = decode_file(path, DecodeConfig(draft_side=0))
    assert full.image.size == (4000, 3000)  # draft_side=0 disables draft


def test_draft_keeps_orientation_and_full_size_meta(tmp_path: Path) -> None:
    path = tmp_path / "big_rotated.jpg"
    _photo(4000, 3000).save(path, quality=80, exif=_exif(Orientation=6))

    decoded = decode_file(path)

    width, height = decoded.image.size
    assert height > width >= DecodeConfig().draft_side  # portrait after rotation
    assert (decoded.meta.width, decoded.meta.height) == (3000, 4000)


def test_jpeg_not_much_larger_than_draft_side_is_decoded_in_full(tmp_path: Path) -> None:
    path = tmp_path / "medium.jpg"
    _photo(1200, 800).save(path)  # shorter side < 2 * 448: halving would go below draft_side
    assert decode_file(path).image.size == (1200, 800)


# --- decompression-bomb guard ------------------------------------------------------------


def test_png_header_declaring_huge_size_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "bomb.png"
    path.write_bytes(_png_with_header(50_000, 50_000))

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with pytest.raises(ImageDecodeError, match=r"2500\.0 megapixels, over the .* limit"):
            decode_file(path)

    assert not [w for w in caught if issubclass(w.category, Image.DecompressionBombWarning)]


def test_max_pixels_is_checked_from_the_header_before_decoding(tmp_path: Path) -> None:
    # 12000x10000 = 120 MP: over Pillow's warning threshold, under its hard error.
    path = tmp_path / "declared.png"
    path.write_bytes(_png_with_header(12_000, 10_000))

    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a leaked DecompressionBombWarning would raise here
        with pytest.raises(ImageDecodeError) as refused:
            decode_file(path, DecodeConfig(max_pixels=100_000_000))
        with pytest.raises(
            ImageDecodeError
        ) as truncated:  # allowed by the declared-pixel limit: the missing data shows
            decode_file(path, DecodeConfig(max_decoded_pixels=200_000_000))

    assert str(refused.value) == ("image is 12000x10000 = 120.0 megapixels, over the 100 megapixel limit")
    assert "truncated or corrupt image data" in str(truncated.value)


def test_max_pixels_on_a_small_real_image(tmp_path: Path) -> None:
    path = tmp_path / "small.png"
    _photo(20, 20).save(path)

    with pytest.raises(ImageDecodeError, match=r"20x20 = .* over the 0\.0001 megapixel"):
        decode_file(path, DecodeConfig(max_pixels=100))
    # The limit is inclusive: exactly max_pixels is allowed.
    assert decode_file(path, DecodeConfig(max_pixels=400)).image.size == (20, 20)


# --- errors ------------------------------------------------------------------------------


def test_empty_file_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "empty.jpg"
    path.write_bytes(b"")
    with pytest.raises(ImageDecodeError, match="^empty file$"):
        decode_file(path)
    with pytest.raises(ImageDecodeError, match="^empty file$"):
        decode_bytes(b"")


def test_text_file_with_image_name_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "notes.jpg"
    path.write_text("these are not the pixels you are looking for\n" * 20)
    with pytest.raises(ImageDecodeError, match=r"not an image file \(or an unsupported format\)"):
        decode_file(path)


EPS = b"%!PS-Adobe-3.0 EPSF-3.0\n%%BoundingBox: 0 0 10 10\nshowpage\n%%EOF\n"


def _no_subprocess(monkeypatch: pytest.MonkeyPatch) -> None:
    """Fail the test if anything starts a process or reaches Pillow's Ghostscript bridge."""
    from PIL import EpsImagePlugin

    def forbidden(*args: object, **kwargs: object) -> None:
        raise AssertionError(f"a subprocess was started: {args!r}")

    for name in ("Popen", "check_call", "check_output", "run"):
        monkeypatch.setattr(subprocess, name, forbidden)
    monkeypatch.setattr(EpsImagePlugin, "Ghostscript", forbidden)


def test_eps_is_refused_without_running_ghostscript(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _no_subprocess(monkeypatch)
    path = tmp_path / "holiday.jpg"  # named like a photo, PostScript inside
    path.write_bytes(EPS)
    with pytest.raises(ImageDecodeError, match=r"^not an image file \(or an unsupported format\)$"):
        decode_bytes(EPS)
    with pytest.raises(ImageDecodeError, match=r"^not an image file \(or an unsupported format\)$"):
        decode_file(path)


@pytest.mark.parametrize("format", ["ICO", "PCX", "TGA"])
def test_formats_xmr_does_not_index_are_refused(format: str, tmp_path: Path) -> None:
    path = tmp_path / "photo.png"
    _photo(32, 32).save(path, format=format)
    with pytest.raises(ImageDecodeError, match=r"not an image file \(or an unsupported format\)"):
        decode_file(path)


@pytest.mark.parametrize(
    ("suffix", "mode", "expected"),
    [
        (".jpg", "RGB", "JPEG"),
        (".png", "RGB", "PNG"),
        (".webp", "RGB", "WEBP"),
        (".gif", "P", "GIF"),
        (".bmp", "RGB", "BMP"),
        (".tif", "RGB", "TIFF"),
        (".ppm", "RGB", "PPM"),
        (".pgm", "L", "PPM"),
        (".pbm", "1", "PPM"),
    ],
)
def test_every_indexed_format_still_decodes(
    suffix: str, mode: str, expected: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _no_subprocess(monkeypatch)
    path = tmp_path / f"photo{suffix}"
    _photo(40, 30).convert(mode).save(path)
    decoded = decode_file(path)
    assert decoded.meta.format == expected and decoded.image.size == (40, 30) and decoded.image.mode == "RGB"


def test_mpo_decodes_through_the_jpeg_format(tmp_path: Path) -> None:
    path = tmp_path / "stereo.jpg"
    _photo(40, 30).save(path, format="MPO", save_all=True, append_images=[_photo(40, 30)])
    assert decode_file(path).meta.format == "MPO"


def test_image_formats_match_image_extensions() -> None:
    formats = image_formats()
    assert {"JPEG", "PNG", "WEBP", "GIF", "BMP", "TIFF", "PPM"} <= set(formats)
    assert "EPS" not in formats and set(formats) <= set(Image.OPEN)
    assert ("AVIF" in formats) == (".avif" in image_extensions())
    assert ("HEIF" in formats) == (".heic" in image_extensions())


def test_truncated_jpeg_is_refused(tmp_path: Path) -> None:
    whole = tmp_path / "whole.jpg"
    _photo(256, 256).save(whole, quality=90)
    data = whole.read_bytes()
    cut = tmp_path / "cut.jpg"
    cut.write_bytes(data[: len(data) // 2])

    assert decode_file(whole).image.size == (256, 256)
    with pytest.raises(ImageDecodeError, match="truncated or corrupt image data: .+"):
        decode_file(cut)


def test_unreadable_path_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ImageDecodeError, match="cannot read file: .*missing.jpg"):
        decode_file(tmp_path / "missing.jpg")
    with pytest.raises(ImageDecodeError, match="cannot read file"):
        decode_file(tmp_path)  # a directory


def test_decode_error_is_an_xmr_error_and_a_value_error() -> None:
    with pytest.raises(ImageDecodeError) as info:
        decode_bytes(b"GIF89a")
    assert isinstance(info.value, XmrError)
    assert isinstance(info.value, ValueError)


def test_heif_without_pillow_heif_names_the_install_command() -> None:
    # In a fresh interpreter where pillow_heif cannot be imported (this one may have registered it).
    probe = (
        "import sys; sys.modules['pillow_heif'] = None\n"
        "from retrieval.images.decode import decode_bytes, image_extensions\n"
        "assert '.heic' not in image_extensions()\n"
        "try:\n"
        "    decode_bytes(b'\\x00\\x00\\x00\\x18ftypheic\\x00\\x00\\x00\\x00mif1heic' + b'\\x00' * 64)\n"
        "except Exception as exc:\n"
        "    print(type(exc).__name__, exc)\n"
    )
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, cwd=REPO, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("ImageDecodeError") and "pillow-heif is not installed" in done.stdout
    assert "xmr[heif]" in done.stdout


def test_heic_decodes_when_pillow_heif_is_installed(tmp_path: Path) -> None:
    pillow_heif = pytest.importorskip("pillow_heif")
    pillow_heif.register_heif_opener()
    path = tmp_path / "photo.heic"
    _photo(64, 48).save(path, format="HEIF")

    decoded = decode_file(path)

    assert decoded.image.mode == "RGB"
    assert (decoded.meta.width, decoded.meta.height) == (64, 48)


# --- hashing and extensions --------------------------------------------------------------


def test_content_hash_matches_hash_file_and_blake2b(tmp_path: Path) -> None:
    path = tmp_path / "photo.jpg"
    _photo(128, 96).save(path)
    expected = hashlib.blake2b(path.read_bytes(), digest_size=16).hexdigest()

    decoded = decode_file(path)

    assert decoded.content_hash == expected == hash_file(path) == hash_file(str(path))
    assert decode_bytes(path.read_bytes()).content_hash == expected
    assert len(expected) == 32


def test_hash_file_streams_files_larger_than_one_chunk(tmp_path: Path) -> None:
    payload = np.random.default_rng(0).bytes(2 * 1024 * 1024 + 123)  # 2 MiB + a partial chunk
    path = tmp_path / "blob.bin"
    path.write_bytes(payload)
    assert hash_file(path) == hashlib.blake2b(payload, digest_size=16).hexdigest()


def test_image_extensions() -> None:
    extensions = image_extensions()

    assert {".jpg", ".jpeg", ".png", ".webp", ".gif", ".tif", ".tiff", ".pgm"} <= extensions
    assert all(ext.startswith(".") and ext == ext.lower() for ext in extensions)
    assert decode_module.IMAGE_EXTENSIONS == extensions
    has_heif = importlib.util.find_spec("pillow_heif") is not None
    assert ({".heic", ".heif"} <= extensions) == has_heif
    assert (".avif" in extensions) == bool(features.check("avif"))


def test_avif_decodes_when_pillow_supports_it(tmp_path: Path) -> None:
    if not features.check("avif"):
        pytest.skip("this Pillow build has no AVIF support")
    path = tmp_path / "photo.avif"
    _photo(64, 48).save(path)

    decoded = decode_file(path)

    assert decoded.meta.format == "AVIF"
    assert decoded.image.mode == "RGB" and decoded.image.size == (64, 48)


def test_module_imports_neither_torch_nor_pillow_heif() -> None:
    # Load the file on its own so an edited retrieval/__init__.py cannot mask the result.
    source = Path(decode_module.__file__)
    probe = (
        "import importlib.util, sys\n"
        f"spec = importlib.util.spec_from_file_location('decode_probe', {str(source)!r})\n"
        "module = sys.modules['decode_probe'] = importlib.util.module_from_spec(spec)\n"
        "spec.loader.exec_module(module)\n"
        "assert 'torch' not in sys.modules, 'torch imported'\n"
        "assert 'pillow_heif' not in sys.modules, 'pillow_heif imported eagerly'\n"
    )
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, cwd=source.parents[1])
    assert result.returncode == 0, result.stderr


@pytest.mark.parametrize(
    "boilerplate", ["OLYMPUS DIGITAL CAMERA", "SONY DSC", "KONICA MINOLTA DIGITAL CAMERA", "  sony dsc  "]
)
def test_camera_default_descriptions_are_not_captions(tmp_path: Path, boilerplate: str) -> None:
    from PIL import ExifTags

    exif = Image.Exif()
    exif[ExifTags.Base.ImageDescription] = boilerplate
    path = tmp_path / "camera.jpg"
    Image.new("RGB", (16, 16)).save(path, exif=exif)
    assert decode_file(path).meta.description is None
    exif[ExifTags.Base.ImageDescription] = "Olympus digital camera on a table"  # a real caption stays
    Image.new("RGB", (16, 16)).save(path, exif=exif)
    assert decode_file(path).meta.description == "Olympus digital camera on a table"
