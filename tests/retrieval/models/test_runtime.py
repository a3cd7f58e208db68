"""Picking the runtime, finding an export (folder, hub, cache, registry), and what happens without torch."""

from __future__ import annotations

import shutil
import warnings
from pathlib import Path

import numpy as np
import pytest

from index.errors import MissingDependencyError
from index.manifest import ModelIdentity
from retrieval.errors import DeviceError
from retrieval.models import exports, runtime
from retrieval.models.exports import FOREIGN, HubExport, add_hub_export, read_export
from retrieval.models.onnx_encoder import OnnxEncoder
from retrieval.models.runtime import FOR_IMAGES, FOR_QUERIES, find_export, model_identity, open_encoder, pick_runtime
from retrieval.models.specs import ModelSpec

REPO_ID = "test-org/tiny__export"


@pytest.mark.parametrize(
    ("requested", "device", "purpose", "gpu", "expected"),
    [
        ("auto", "auto", FOR_QUERIES, True, "onnx"),  # a query never pays torch's import
        ("auto", "cuda", FOR_QUERIES, True, "onnx"),
        ("auto", "auto", FOR_IMAGES, False, "onnx"),  # images on the CPU
        ("auto", "cpu", FOR_IMAGES, True, "onnx"),
        ("auto", "auto", FOR_IMAGES, True, "torch"),  # images on a GPU: nvJPEG and mixed precision
        ("auto", "cuda:1", FOR_IMAGES, False, "torch"),
        ("onnx", "cuda", FOR_IMAGES, True, "onnx"),
        ("torch", "cpu", FOR_QUERIES, False, "torch"),
    ],
)
def test_pick_runtime(
    requested: str, device: str, purpose: str, gpu: bool, expected: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(runtime, "gpu_present", lambda: gpu)
    assert pick_runtime(requested, device, purpose) == expected


def test_without_torch_everything_runs_on_onnx_and_torch_is_refused_by_name(monkeypatch: pytest.MonkeyPatch) -> None:
    from index import deps

    monkeypatch.setattr(runtime, "torch_installed", lambda: False)
    monkeypatch.setattr(deps, "torch_installed", lambda: False)
    monkeypatch.setattr(runtime, "gpu_present", lambda: True)
    assert pick_runtime("auto", "cuda", FOR_IMAGES) == "onnx"
    with pytest.raises(MissingDependencyError, match=r"pip install 'xmr\[torch\]'"):
        pick_runtime("torch")
    with pytest.raises(MissingDependencyError, match=r"making one needs torch.*xmr\[torch\]"):
        find_export(ModelSpec("ViT-B-32", "random"))
    with pytest.raises(MissingDependencyError, match=r"xmr\[torch\]"):
        model_identity(ModelSpec("ViT-B-32", "random"))
    with pytest.raises(DeviceError, match="runtime must be one of"):
        pick_runtime("tensorrt")


def _foreign_copy(tiny_export_dir: Path, folder: Path) -> Path:
    """The tiny export as another tool would leave it: Immich's files, no xmr_export.json."""
    copy = Path(shutil.copytree(tiny_export_dir, folder))
    (copy / "xmr_export.json").unlink()
    return copy


def test_a_foreign_export_folder_is_a_model_of_its_own(tiny_export_dir: Path, tiny_encoder, tmp_path: Path) -> None:  # noqa: ANN001
    foreign = _foreign_copy(tiny_export_dir, tmp_path / "immich-tiny")
    encoder = open_encoder(ModelSpec(str(foreign)), device="cpu")
    identity = encoder.identity
    assert (identity.arch, identity.pretrained, identity.embed_dim, identity.spec) == (
        "immich-tiny",
        FOREIGN,
        32,
        str(foreign),
    )
    assert len(identity.weights_sha256) == 64 and not identity.same_model(tiny_encoder.identity)
    texts = ["a dog", "日本 😀", "x " * 30]
    assert np.sum(encoder.encode_texts(texts) * tiny_encoder.encode_texts(texts), 1).min() >= 0.9999
    assert model_identity(ModelSpec(f"local-dir:{foreign}")) == identity


def test_towers_with_a_fixed_batch_of_one_still_take_batches(
    tiny_export_dir: Path, tiny_encoder, tmp_path: Path
) -> None:  # noqa: ANN001
    """Immich's newer exports fix the batch at 1; xmr runs such towers one row at a time."""
    import torch

    foreign = _foreign_copy(tiny_export_dir, tmp_path / "fixed")
    model = tiny_encoder.model

    class Image(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.model = model

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.model.encode_image(x, normalize=True)

    fastpath = torch.backends.mha.get_fastpath_enabled()
    torch.backends.mha.set_fastpath_enabled(False)  # the fused attention kernel has no ONNX form
    try:
        with torch.no_grad(), warnings.catch_warnings():
            warnings.simplefilter("ignore")  # the tracer's notes about Python ints in shapes
            example = (torch.zeros(1, 3, 32, 32),)  # no dynamic axes: the batch is fixed at 1
            torch.onnx.export(Image(), example, str(foreign / "visual/model.onnx"), input_names=["image"], dynamo=False)
    finally:
        torch.backends.mha.set_fastpath_enabled(fastpath)
    encoder = OnnxEncoder(read_export(foreign), device="cpu")
    rng = np.random.default_rng(0)
    pixels = rng.standard_normal((3, 3, 32, 32)).astype(np.float32)
    expected = tiny_encoder.encode_images(torch.from_numpy(pixels))
    assert np.sum(encoder.encode_images(pixels) * expected, 1).min() >= 0.9999


def _fake_hub_cache(root: Path, repo: str, export: Path) -> Path:
    """The Hugging Face cache layout (refs/main -> snapshots/REV/...), as a download leaves it."""
    revision = "0123456789abcdef0123456789abcdef01234567"
    cache = root / f"models--{repo.replace('/', '--')}"
    (cache / "refs").mkdir(parents=True)
    (cache / "refs" / "main").write_text(revision)
    shutil.copytree(export, cache / "snapshots" / revision)
    return root


@pytest.fixture
def hub_cache(tmp_path: Path, tiny_export_dir: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    from huggingface_hub import constants

    root = _fake_hub_cache(tmp_path / "hub", REPO_ID, _foreign_copy(tiny_export_dir, tmp_path / "plain"))
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(root))
    return root


def test_a_hub_export_is_read_offline_from_the_hub_cache(hub_cache: Path, tiny_encoder) -> None:  # noqa: ANN001
    encoder = open_encoder(ModelSpec(f"hf-hub:{REPO_ID}"), device="cpu")
    assert encoder.identity.spec == f"hf-hub:{REPO_ID}" and encoder.identity.arch == REPO_ID
    assert np.sum(encoder.encode_texts(["a cat"]) * tiny_encoder.encode_texts(["a cat"])) >= 0.9999


def test_a_registered_hub_export_stands_in_for_its_open_clip_model_without_torch(
    hub_cache: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """How the default model runs on a machine without torch: the tag's own export from the hub."""
    monkeypatch.setattr(runtime, "torch_installed", lambda: False)
    monkeypatch.setattr(exports, "_HUB_EXPORTS", dict(exports._HUB_EXPORTS))  # noqa: SLF001 (restored after)
    add_hub_export(HubExport("tiny-arch", "tiny-tag", REPO_ID, 32))
    spec = ModelSpec("tiny-arch", "tiny-tag")
    expected = ModelIdentity("tiny-arch", "tiny-tag", "", 32, "tiny-arch", "tiny-tag")
    assert model_identity(spec) == expected
    encoder = open_encoder(spec, device="cpu")
    assert encoder.identity == expected and encoder.encode_texts(["a dog"]).shape == (1, 32)
    default = exports.get_hub_export("ViT-B-32", "laion2b_s34b_b79k")
    assert default is not None and default.repo == "immich-app/ViT-B-32__laion2b-s34b-b79k"


def test_a_hub_export_that_is_not_cached_offline_names_the_way_out(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from huggingface_hub import constants

    from retrieval.errors import WeightsUnavailableError

    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "empty"))
    with pytest.raises(WeightsUnavailableError, match="HF_HUB_OFFLINE.*--model /path/to/folder"):
        exports.hub_export_folder("immich-app/ViT-B-32__laion2b-s34b-b79k")


def test_an_export_folder_does_not_run_on_torch(tiny_export_dir: Path) -> None:
    from retrieval.errors import ExportError

    with pytest.raises(ExportError, match="runs on onnxruntime"):
        open_encoder(ModelSpec(str(tiny_export_dir)), device="cpu", runtime="torch")


def test_a_first_text_query_loads_the_tokenizer_beside_its_session_and_encodes_alike(
    tiny_export_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import threading

    from retrieval.models.tokenizer import TextTokenizer

    loaded_in: list[str] = []
    original = TextTokenizer.from_file

    def recording(path: Path, config):  # noqa: ANN001, ANN202
        loaded_in.append(threading.current_thread().name)
        return original(path, config)

    monkeypatch.setattr(TextTokenizer, "from_file", staticmethod(recording))
    texts = ["a dog", "日本 😀", "x " * 30, ""]
    aside = OnnxEncoder(read_export(tiny_export_dir), device="cpu")
    vectors = aside.encode_texts(texts)
    assert loaded_in == ["xmr-tokenizer"]  # once, in the loader thread
    aside.encode_texts(["a cat"])
    assert loaded_in == ["xmr-tokenizer"]  # never again
    first = OnnxEncoder(read_export(tiny_export_dir), device="cpu")
    first.tokenizer  # noqa: B018  (loaded before any session: the plain way)
    assert loaded_in == ["xmr-tokenizer", "MainThread"]
    assert np.array_equal(vectors, first.encode_texts(texts))
    assert aside.encode_texts([]).shape == (0, 32)


def test_a_damaged_tokenizer_is_said_where_the_text_is_encoded(tiny_export_dir: Path, tmp_path: Path) -> None:
    folder = Path(shutil.copytree(tiny_export_dir, tmp_path / "damaged"))
    (folder / "textual" / "tokenizer.json").write_text('{"model": ')
    encoder = OnnxEncoder(read_export(folder), device="cpu")
    for _ in range(2):  # the loader thread's failure does not hide the error, nor stick
        with pytest.raises(ValueError, match="is not a tokenizer.json"):
            encoder.encode_texts(["a dog"])
    rng = np.random.default_rng(0)
    assert encoder.encode_images(rng.standard_normal((2, 3, 32, 32)).astype(np.float32)).shape == (2, 32)
