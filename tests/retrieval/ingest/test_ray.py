"""``index --ray``: Ray Data workers embed, the driver commits exactly as a local run does.

One local Ray (2 CPUs, one per actor) serves the module; the two tests using it run index
jobs on it. The others need no Ray: the worker's model check calls the actor directly.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from index.catalog import TEXTS
from index.records import FileStat
from index.tokens import TokenCache
from retrieval import IngestConfig, ModelMismatchError
from retrieval.ingest.distributed import RayConfig, check_worker_model
from tests.helpers.files import add_broken_files
from tests.helpers.paths import REPO

ROOT = REPO
pytestmark = pytest.mark.filterwarnings("ignore:.*deprecated:DeprecationWarning")  # Ray Data's own settings


@pytest.fixture(scope="module")
def ray_local():  # noqa: ANN201
    """A local Ray with 2 CPUs, started once for the module (skipped when Ray is missing)."""
    ray = pytest.importorskip("ray", reason="Ray is not installed (pip install 'xmr[ray]')")
    pytest.importorskip("ray.data", reason="Ray Data is not installed (pip install 'xmr[ray]')")
    ray.init(num_cpus=2, include_dashboard=False, logging_level="WARNING", log_to_driver=False)
    yield ray
    ray.shutdown()


def _rows(lib) -> dict[str, tuple]:  # noqa: ANN001
    """path -> (id, state, hash, width, height, error, vector) for every catalog row."""
    rows = lib.catalog.files_under([os.sep])
    vectors = lib.catalog.vectors_for([r.id for r in rows.values()])
    return {
        path: (r.id, r.state, r.content_hash, r.width, r.height, r.error, np.frombuffer(vectors.get(r.id, b""), "<f4"))
        for path, r in rows.items()
    }


def _captions(lib) -> dict[tuple[str, str], np.ndarray]:  # noqa: ANN001
    """(image path, caption) -> vector of every linked text."""
    ids, vectors = lib.catalog.vectors_since(TEXTS, 0, lib.identity.embed_dim)
    records = lib.catalog.texts(ids.tolist())
    return {(records[int(i)].image_path, records[int(i)].body): v for i, v in zip(ids, vectors)}


def _many(folder: Path, count: int) -> Path:
    from PIL import Image

    folder.mkdir()
    rng = np.random.default_rng(0)
    for i in range(count):
        Image.fromarray(rng.integers(0, 255, (48, 64, 3), dtype=np.uint8)).save(folder / f"img{i:02d}.png")
    return folder


def test_ray_run_equals_local_run(ray_local, open_library, photos: Path, tmp_path: Path) -> None:  # noqa: ANN001
    add_broken_files(photos, next(photos.rglob("*.jpg")))
    coffee = next(photos.rglob("coffee.*"))
    Path(str(coffee) + ".txt").write_text("black coffee\nwhite cup\n")
    shutil.copy2(coffee, photos / "nested" / f"copy{coffee.suffix}")  # same bytes: one vector copied
    config = IngestConfig(batch_size=3)

    local = open_library(tmp_path / "local").index([photos], config=config, cache_tokens=True)
    lib = open_library(tmp_path / "ray")
    distributed = lib.index([photos], config=config, ray=RayConfig(actors=2), cache_tokens=True)

    for field in ("added", "updated", "failed", "failures", "encoded"):
        assert getattr(distributed, field) == getattr(local, field), field
    assert distributed.added == 7 and distributed.failed == 4
    want, got = _rows(open_library(tmp_path / "local")), _rows(lib)
    assert want.keys() == got.keys()
    for path, row in want.items():
        assert got[path][:6] == row[:6], path  # same ids (same commit order), states, hashes, errors
        np.testing.assert_allclose(got[path][6], row[6], atol=1e-5, err_msg=path)
    want_captions, got_captions = _captions(open_library(tmp_path / "local")), _captions(lib)
    assert want_captions.keys() == got_captions.keys() == {(str(coffee), "black coffee"), (str(coffee), "white cup")}
    for key, vector in want_captions.items():
        np.testing.assert_allclose(got_captions[key], vector, atol=1e-5)
    assert lib.images.agrees_with_catalog() and lib.texts.agrees_with_catalog()
    # The workers' token grids fill the library's token cache as a local run's do.
    hashes = sorted({row[2] for row in want.values() if row[2] and not row[5]})
    want_tokens, want_found = TokenCache.open(tmp_path / "local").get(hashes)
    got_tokens, got_found = TokenCache.open(lib.layout.root).get(hashes)
    assert len(hashes) == 6 and want_found.all() and got_found.all()  # 7 added, one a copy of another's bytes
    np.testing.assert_allclose(got_tokens.astype(np.float32), want_tokens.astype(np.float32), rtol=2e-3, atol=2e-3)


def test_interrupted_ray_run_keeps_its_batches_and_the_cli_resumes(
    ray_local, open_library, tmp_path: Path, tiny_model_dir: Path
) -> None:  # noqa: ANN001
    from typer.testing import CliRunner

    from cli import app

    folder, library = _many(tmp_path / "many", 20), tmp_path / "library"
    lib = open_library(library)

    def stop(progress) -> None:  # noqa: ANN001
        if progress.done >= 4:
            raise KeyboardInterrupt  # Ctrl-C while the workers are busy

    with pytest.raises(KeyboardInterrupt):
        lib.index([folder], config=IngestConfig(batch_size=4), on_progress=stop, ray=RayConfig(actors=1))
    assert lib.images.agrees_with_catalog()
    kept = {path: row[0] for path, row in _rows(lib).items()}
    assert len(kept) == 4  # the first batch is committed, the one in flight is not
    lib.close()

    result = CliRunner().invoke(
        app,
        ["index", str(folder), "--library", str(library), "--ray", "--ray-actors", "1", "--batch-size", "4", "--json"],
    )
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert (report["added"], report["unchanged"], report["failed"]) == (16, 4, 0)
    resumed = open_library(library)
    rows = _rows(resumed)
    assert len(rows) == 20 and all(rows[path][0] == i for path, i in kept.items())
    assert resumed.images.agrees_with_catalog()


def test_worker_with_other_weights_refuses_and_the_driver_raises(
    tmp_path: Path, tiny_model_dir: Path, other_model_dir: Path
) -> None:
    """The actor as Ray runs it, called directly: no Ray needed."""
    from retrieval.images.decode import DecodeConfig
    from retrieval.ingest.distributed import EmbedActor, _unpack
    from retrieval.models.specs import ModelSpec, resolve

    model = tmp_path / "model"
    shutil.copytree(tiny_model_dir, model)
    built = resolve(ModelSpec(f"local-dir:{model}")).identity
    folder = _many(tmp_path / "few", 2)
    batch = {"i": np.arange(2), "path": np.array([str(p) for p in sorted(folder.iterdir())])}
    rows = EmbedActor(built.to_dict(), "cpu", DecodeConfig(), 1)(batch)
    assert not any(rows["refusal"]) and rows["vector"].shape == (2, built.embed_dim)
    np.testing.assert_allclose(np.linalg.norm(rows["vector"], axis=1), 1.0, atol=1e-5)

    for weights in model.glob("*.safetensors"):  # this node now holds other files at that path
        shutil.copy2(other_model_dir / weights.name, weights)
    refused = EmbedActor(built.to_dict(), "cpu", DecodeConfig(), 1)(batch)
    assert not refused["vector"].any()  # embeds nothing with the wrong model
    stats = [FileStat(str(p), 1, 1) for p in batch["path"]]
    with pytest.raises(ModelMismatchError, match="Ray worker on .* loaded"):
        list(_unpack(refused, stats, None))  # type: ignore[arg-type]


def test_check_worker_model_compares_weights_and_width(tiny_encoder) -> None:  # noqa: ANN001
    import dataclasses

    built = tiny_encoder.identity
    check_worker_model(built, dataclasses.replace(built), "node-1")  # the same model passes
    with pytest.raises(ModelMismatchError, match="node-1"):
        check_worker_model(built, dataclasses.replace(built, weights_sha256="0" * 64), "node-1")
    with pytest.raises(ModelMismatchError, match="dim 64"):
        check_worker_model(built, dataclasses.replace(built, embed_dim=64), "node-1")


def test_missing_ray_names_the_extra(open_library, photos: Path, monkeypatch: pytest.MonkeyPatch) -> None:  # noqa: ANN001
    from retrieval import MissingDependencyError

    monkeypatch.setitem(sys.modules, "ray", None)  # import ray fails as if not installed
    lib = open_library()
    with pytest.raises(MissingDependencyError, match=r"xmr\[ray\]"):
        lib.index([photos], ray=RayConfig())
    assert lib.info().images == 0


def test_help_does_not_import_ray() -> None:
    code = "import sys, cli\ntry:\n    cli.app(['index', '--help'])\nexcept SystemExit:\n    pass\nprint('ray' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True).stdout
    assert "--ray" in out and out.strip().splitlines()[-1] == "False"
