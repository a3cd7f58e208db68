"""Resolving --model/--pretrained: local folders, weights files, tags, offline failure."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from retrieval.errors import ModelNotFoundError, WeightsUnavailableError
from retrieval.models.specs import ModelSpec, file_sha256, resolve
from tests.helpers.paths import REPO


def test_local_dir_and_plain_folder_resolve_alike(tiny_model_dir: Path) -> None:
    by_prefix = resolve(ModelSpec(f"local-dir:{tiny_model_dir}"))
    by_path = resolve(ModelSpec(str(tiny_model_dir)))
    assert by_prefix.identity == by_path.identity
    identity = by_prefix.identity
    assert (identity.arch, identity.pretrained, identity.embed_dim) == ("tiny-0", "local-dir", 32)
    assert identity.weights_sha256 == file_sha256(tiny_model_dir / "open_clip_model.safetensors")


def test_architecture_with_weights_file(tiny_model_dir: Path, tmp_path: Path) -> None:
    import open_clip

    from retrieval.models.encoder import load_encoder

    config = json.loads((tiny_model_dir / "open_clip_config.json").read_text())["model_cfg"]
    (tmp_path / "xmr-tiny-test.json").write_text(json.dumps(config))
    open_clip.add_model_config(tmp_path / "xmr-tiny-test.json")
    weights = tmp_path / "weights.safetensors"
    shutil.copyfile(tiny_model_dir / "open_clip_model.safetensors", weights)
    resolved = resolve(ModelSpec("xmr-tiny-test", str(weights)))
    assert (resolved.identity.pretrained, resolved.identity.spec_pretrained) == ("file", str(weights))
    from_file = load_encoder(resolved, device="cpu")
    from_dir = load_encoder(ModelSpec(f"local-dir:{tiny_model_dir}"), device="cpu")
    texts = ["a red circle", "a blue square"]
    assert from_file.encode_texts(texts) == pytest.approx(from_dir.encode_texts(texts), abs=1e-6)


def test_random_weights_are_reproducible() -> None:
    from retrieval.models.encoder import load_encoder

    identity = resolve(ModelSpec("RN50", "random")).identity
    assert (identity.pretrained, identity.embed_dim) == ("random", 1024)
    first = load_encoder(ModelSpec("RN50", "random"), device="cpu").encode_texts(["x"])
    second = load_encoder(ModelSpec("RN50", "random"), device="cpu").encode_texts(["x"])
    assert first == pytest.approx(second)


@pytest.mark.parametrize(
    ("spec", "fragment"),
    [
        (ModelSpec("ViT-B-3", "laion2b_s34b_b79k"), "Did you mean"),
        (ModelSpec("ViT-B-32", "no-such-tag"), "known tags"),
        (ModelSpec("ViT-B-32", ""), "needs --pretrained"),
        (ModelSpec("ViT-B-32", "/no/such/weights.safetensors"), "does not exist"),
        (ModelSpec("local-dir:/no/such/folder"), "does not exist"),
    ],
)
def test_bad_model_names_say_what_to_do(spec: ModelSpec, fragment: str) -> None:
    with pytest.raises(ModelNotFoundError, match=fragment):
        resolve(spec)


def test_folder_without_config_or_weights(tmp_path: Path, tiny_model_dir: Path) -> None:
    with pytest.raises(ModelNotFoundError, match="open_clip_config.json"):
        resolve(ModelSpec(str(tmp_path)))
    shutil.copy(tiny_model_dir / "open_clip_config.json", tmp_path)
    with pytest.raises(ModelNotFoundError, match="no weights file"):
        resolve(ModelSpec(str(tmp_path)))


def test_uncached_tag_fails_fast_offline() -> None:
    start = time.monotonic()
    with pytest.raises(WeightsUnavailableError, match="local-dir"):
        resolve(ModelSpec())  # ViT-B-32 / laion2b_s34b_b79k: never cached on test machines
    assert time.monotonic() - start < 10


def test_uncached_tag_fails_fast_when_network_is_unreachable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("HF_HUB_OFFLINE")
    monkeypatch.setattr("retrieval.models.specs.reachable", lambda host, **_: False)
    with pytest.raises(WeightsUnavailableError, match="cannot be reached"):
        resolve(ModelSpec())


def test_cli_help_does_not_import_torch() -> None:
    code = (
        "import sys\n"
        "from typer.testing import CliRunner\n"
        "import cli\n"
        "for args in (['--help'], ['index', '--help'], ['search', '--help'], ['info', '--help']):\n"
        "    assert CliRunner().invoke(cli.app, args).exit_code == 0, args\n"
        "import retrieval\n"
        "assert 'torch' not in sys.modules and 'open_clip' not in sys.modules, 'torch imported'\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, cwd=REPO)


def test_a_model_whose_tokenizer_needs_transformers_says_which_extra(tmp_path, monkeypatch) -> None:  # noqa: ANN001
    # SigLIP, SigLIP2, NLLB and XLM-R models tokenize through transformers: without it, a
    # message naming the extra (before the model is built), not exit 70.
    import json
    import sys

    import pytest

    from retrieval import MissingDependencyError
    from retrieval.models.encoder import load_encoder
    from retrieval.models.specs import ModelSpec
    from tests.helpers.tiny_model import make_tiny_model

    folder = make_tiny_model(tmp_path / "hf-tokenized")
    config = json.loads((folder / "open_clip_config.json").read_text())
    config["model_cfg"]["text_cfg"]["hf_tokenizer_name"] = "timm/ViT-B-16-SigLIP"
    (folder / "open_clip_config.json").write_text(json.dumps(config))
    monkeypatch.setitem(sys.modules, "transformers", None)
    with pytest.raises(MissingDependencyError, match=r"pip install 'xmr\[transformers\]'"):
        load_encoder(ModelSpec(f"local-dir:{folder}"), device="cpu")
