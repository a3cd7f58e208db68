"""The CLI on onnxruntime: export-model, --runtime, and commands run with torch made unimportable."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

import cli
from tests.helpers.paths import REPO

TORCH_HINT = "pip install 'xmr[torch]'"
# Installed as sitecustomize.py: torch, torchvision and open_clip look uninstalled (as in a slim install).
BLOCKER = """
import sys

class NotInstalled:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in ("torch", "torchvision", "open_clip"):
            raise ModuleNotFoundError(f"No module named {name!r} (blocked by the test)", name=name)
        return None

sys.meta_path.insert(0, NotInstalled())
"""
# Run cli commands in one process, then name the heavy modules that got imported.
PROBE_FOOTER = """
print("heavy:", sorted(m for m in ("torch", "torchvision", "open_clip") if m in sys.modules))
"""
# What a search process never needs: the ML frameworks and what comes with them, video and OCR,
# RAW and HEIF decoders, the web server, another catalog's driver, the hub client (the model is a
# local export), the text fixer (ASCII queries), data-science stacks, and what only indexing reads.
SEARCH_NEVER_IMPORTS = (
    "torch", "torchvision", "open_clip", "timm", "transformers", "safetensors", "onnx",
    "cv2", "av", "rapidocr_onnxruntime", "rawpy", "pillow_heif",
    "fastapi", "starlette", "uvicorn", "httpx", "requests", "ray", "psycopg", "watchfiles",
    "huggingface_hub", "ftfy", "skimage", "scipy", "sklearn", "pandas", "matplotlib",
    "pathspec",
    "pydantic", "sqlalchemy", "importlib.metadata",  # typer 0.29's coercion; the quick catalog; versions
)  # fmt: skip


@pytest.fixture
def run(tmp_path: Path, tiny_model_dir: Path):  # noqa: ANN201
    runner = CliRunner()

    def _run(*args: str):  # noqa: ANN202
        return runner.invoke(cli.app, list(args))

    _run.library = str(tmp_path / "library")  # type: ignore[attr-defined]
    _run.model = f"local-dir:{tiny_model_dir}"  # type: ignore[attr-defined]
    return _run


def _env(tmp_path: Path, blocked: bool, **extra: str) -> dict[str, str]:
    paths = [str(REPO)]
    if blocked:
        (tmp_path / "blocker").mkdir(exist_ok=True)
        (tmp_path / "blocker" / "sitecustomize.py").write_text(BLOCKER)
        paths.insert(0, str(tmp_path / "blocker"))
    return {**os.environ, "PYTHONPATH": os.pathsep.join(paths), **extra}


def _probe(commands: list[list[str]], prelude: str = "") -> str:
    lines = ["import sys, cli", prelude]
    for args in commands:
        lines += [
            "try:",
            f"    cli.app({args!r})",
            "except SystemExit as done:",
            f"    assert not done.code, ({args!r}, done.code)",
        ]
    return "\n".join(lines) + PROBE_FOOTER


def _python(code: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-c", code], cwd=REPO, env=env, capture_output=True, text=True, timeout=240)


def test_search_add_texts_index_and_serve_need_no_torch(run, photos: Path, tmp_path: Path) -> None:  # noqa: ANN001
    """An open_clip model's export is made once on the first CPU index; afterwards nothing imports torch."""
    more = tmp_path / "more"
    more.mkdir()
    for photo in sorted(photos.rglob("*.*"))[:2]:
        shutil.copy(photo, more / f"copy-{photo.name}")
    query_image = tmp_path / "query.png"
    from PIL import Image

    with Image.open(next(photos.rglob("chelsea.*"))) as source:
        source.convert("RGB").rotate(90).save(query_image)  # a new image: the image tower must run
    texts = tmp_path / "captions.txt"
    texts.write_text("a cat\na rocket on the launch pad\ncoins on a table\n")

    indexed = run("index", str(photos), "--model", run.model, "--library", run.library, "--json")
    assert indexed.exit_code == 0, indexed.output
    exports = Path(os.environ["XDG_CACHE_HOME"]) / "xmr" / "exports"
    assert any(p.name.startswith("tiny-0-") for p in exports.iterdir())  # made automatically, once
    on_torch = run("search", "a man riding a horse", "-k", "3", "--paths", "--runtime", "torch", "-L", run.library)
    assert on_torch.exit_code == 0, on_torch.output

    library = ["--library", run.library]
    commands = [
        ["search", "a man riding a horse", "-k", "3", "--paths", *library],
        ["search", "--image", str(query_image), "-k", "2", "--paths", *library],
        ["add-texts", str(texts), *library],
        ["search", "--texts", "--image", str(query_image), "-k", "1", *library],
        ["index", str(more), *library],
    ]
    serve = (
        "from fastapi.testclient import TestClient\n"
        "from retrieval import Library\n"
        "from retrieval.serve import ServeConfig, create_app\n"
        f"with Library.open({run.library!r}, create=False) as lib, "
        "TestClient(create_app(lib, ServeConfig()), base_url='http://127.0.0.1') as c:\n"
        "    reply = c.get('/api/search', params={'q': 'a spotted cat', 'k': 2})\n"
        "    assert reply.status_code == 200 and len(reply.json()['hits']) == 2, reply.text\n"
    )
    for blocked in (True, False):  # torch uninstalled, and torch installed but never imported
        done = _python(_probe(commands) + serve + PROBE_FOOTER, _env(tmp_path, blocked))
        assert done.returncode == 0, done.stderr[-3000:]
        lines = done.stdout.splitlines()
        if blocked:  # the second run searches the photos the first one indexed too
            assert lines[:3] == on_torch.stdout.splitlines()  # the same top 3 as torch
        assert lines[-1] == lines[-2] == "heavy: []"


def test_a_search_process_imports_no_heavy_stack(run, photos: Path, tmp_path: Path, tiny_export_dir: Path) -> None:  # noqa: ANN001
    """Text, image (a file outside the library) and --texts searches in one process, torch installed."""
    assert run("index", str(photos), "--model", str(tiny_export_dir), "--library", run.library).exit_code == 0
    texts = tmp_path / "captions.txt"
    texts.write_text("a cat\na rocket on the launch pad\n")
    assert run("add-texts", str(texts), "--library", run.library).exit_code == 0
    query_image = tmp_path / "query.png"
    from PIL import Image

    with Image.open(next(photos.rglob("rocket.*"))) as source:
        source.convert("RGB").rotate(90).save(query_image)  # not in the library: the image tower runs
    library = ["--library", run.library]
    commands = [
        ["search", "a man riding a horse", "-k", "2", "--paths", *library],
        ["search", "--image", str(query_image), "-k", "2", "--paths", *library],
        ["search", "--texts", "a red rocket", "-k", "1", *library],
    ]
    footer = f"print('loaded:', sorted(m for m in {SEARCH_NEVER_IMPORTS!r} if m in sys.modules))\n"
    done = _python(_probe(commands) + footer, _env(tmp_path, blocked=False))
    assert done.returncode == 0, done.stderr[-3000:]
    lines = done.stdout.splitlines()
    assert len([line for line in lines if line.startswith(str(photos))]) == 4  # both searches answered
    assert lines[-2:] == ["heavy: []", "loaded: []"]


def test_commands_that_need_torch_stop_at_once_naming_the_extra(run, photos: Path, tmp_path: Path) -> None:  # noqa: ANN001
    assert run("index", str(photos), "--model", run.model, "--library", run.library).exit_code == 0
    env = _env(tmp_path, blocked=True)
    (tmp_path / "pairs").mkdir()
    for args in (
        ["train", str(tmp_path / "pairs"), "--out", str(tmp_path / "out")],
        ["eval", str(tmp_path / "pairs"), "--model", run.model],
        ["train-reranker", str(tmp_path / "pairs"), "--model", run.model, "--out", str(tmp_path / "rr")],
        ["export-model", run.model, "--out", str(tmp_path / "export")],
        ["search", "a cat", "--reranker", str(tmp_path / "rr"), "--library", run.library],
        ["index", str(photos), "--runtime", "torch", "--library", run.library],
        ["index", str(photos), "--model", "ViT-B-32", "--pretrained", "random", "--library", str(tmp_path / "b32")],
    ):
        done = subprocess.run(
            [sys.executable, "-m", "cli", *args], cwd=REPO, env=env, capture_output=True, text=True, timeout=120
        )
        assert done.returncode == 2, (args, done.stdout, done.stderr[-2000:])
        assert TORCH_HINT in " ".join(done.stderr.split()), (args, done.stderr[-2000:])


def _hub_cache(root: Path, repo: str, export: Path) -> Path:
    """The Hugging Face cache layout (refs/main -> snapshots/REV/...), as a download leaves it."""
    revision = "89abcdef0123456789abcdef0123456789abcdef"
    cache = root / f"models--{repo.replace('/', '--')}"
    (cache / "refs").mkdir(parents=True)
    (cache / "refs" / "main").write_text(revision)
    shutil.copytree(export, cache / "snapshots" / revision)
    (cache / "snapshots" / revision / "xmr_export.json").unlink()  # as Immich publishes it
    return root


def test_a_fresh_machine_without_torch_runs_the_default_model_from_its_hub_export(
    photos: Path, tmp_path: Path, tiny_export_dir: Path
) -> None:
    """No --model, no torch, offline: the default model's registered hub export, from a stand-in hub cache.

    The stand-in holds the tiny model under the default model's repo name, so the registry
    entry is re-registered with the tiny model's width; everything else is the product's path."""
    repo = "immich-app/ViT-B-32__laion2b-s34b-b79k"
    hub = _hub_cache(tmp_path / "hub", repo, tiny_export_dir)
    prelude = (
        "from retrieval.models.exports import HubExport, add_hub_export\n"
        f"add_hub_export(HubExport('ViT-B-32', 'laion2b_s34b_b79k', {repo!r}, 32))\n"
    )
    library = ["--library", str(tmp_path / "library")]
    commands = [["index", str(photos), *library], ["search", "a man riding a horse", "-k", "2", "--paths", *library]]
    env = _env(tmp_path, blocked=True, HF_HUB_CACHE=str(hub), HF_HUB_OFFLINE="1")
    done = _python(_probe(commands, prelude), env)
    assert done.returncode == 0, done.stderr[-3000:]
    assert len([line for line in done.stdout.splitlines() if line.startswith(str(photos))]) == 2
    manifest = json.loads((tmp_path / "library" / "manifest.json").read_text())
    assert (manifest["model"]["arch"], manifest["model"]["pretrained"]) == ("ViT-B-32", "laion2b_s34b_b79k")


def test_export_model_writes_a_folder_that_works_as_model(run, photos: Path, tmp_path: Path) -> None:  # noqa: ANN001
    out = tmp_path / "export"
    done = run("export-model", run.model, "--out", str(out))
    assert done.exit_code == 0, done.output
    assert (out / "textual" / "model.onnx").is_file() and (out / "visual" / "preprocess_cfg.json").is_file()
    again = run("export-model", run.model, "--out", str(out))
    assert again.exit_code == 2 and "not empty" in again.output

    assert (
        run("index", str(photos), "--model", run.model, "--library", run.library, "--runtime", "torch").exit_code == 0
    )
    # The export is the same model as the one the library was built with: accepted, same results.
    by_export = run("search", "a rocket", "-k", "3", "--paths", "--model", str(out), "-L", run.library)
    by_model = run("search", "a rocket", "-k", "3", "--paths", "--runtime", "torch", "-L", run.library)
    assert by_export.exit_code == 0, by_export.output
    assert by_export.stdout == by_model.stdout

    # An export without xmr's record is another model: refused for this library, by name.
    foreign = Path(shutil.copytree(out, tmp_path / "foreign"))
    (foreign / "xmr_export.json").unlink()
    refused = run("search", "a rocket", "--model", str(foreign), "-L", run.library)
    assert refused.exit_code == 2 and "was built with" in " ".join(refused.output.split())
    assert run("search", "a rocket", "--runtime", "tensorrt", "-L", run.library).exit_code == 2
