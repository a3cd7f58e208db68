"""`xmr index --index-kind/--memory-budget` reach the library, are remembered, and show in `xmr info`."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

import cli
from index.config import IndexConfig, load_config
from index.snapshot import read_header


def test_index_kind_is_used_remembered_and_shown(tmp_path: Path, tiny_model_dir: Path, photos: Path) -> None:
    library, runner = tmp_path / "library", CliRunner()
    model = f"local-dir:{tiny_model_dir}"
    done = runner.invoke(
        cli.app,
        [
            "index",
            str(photos),
            "--library",
            str(library),
            "--model",
            model,
            "--index-kind",
            "ondisk",
            "--memory-budget",
            "2GB",
        ],
    )
    assert done.exit_code == 0, done.output
    assert read_header(library / "images.vec")[0].kind == "ondisk"
    assert load_config(library / "index.json") == IndexConfig(kind="ondisk", memory_budget=2 * 10**9)

    again = runner.invoke(cli.app, ["index", str(photos), "--library", str(library)])  # no options: the saved kind
    assert again.exit_code == 0, again.output
    info = json.loads(runner.invoke(cli.app, ["info", "--library", str(library), "--json"]).stdout)
    assert info["index_kind"] == "ondisk" and info["vectors"] == 6
    assert 0 < info["index_memory"] and info["bytes_per_vec"] == round(info["index_memory"] / 6, 1)
    hits = runner.invoke(cli.app, ["search", "a horse", "--library", str(library), "--paths", "-k", "6"])
    assert hits.exit_code == 0 and len(hits.stdout.splitlines()) == 6


def test_bad_kind_or_budget_is_a_usage_error(tmp_path: Path, photos: Path) -> None:
    runner = CliRunner()
    for option, value in (("--index-kind", "hnsw"), ("--memory-budget", "lots")):
        done = runner.invoke(cli.app, ["index", str(photos), "--library", str(tmp_path / "lib"), option, value])
        assert done.exit_code == 2 and ("not a size" in done.output or "hnsw" in done.output)
        assert not (tmp_path / "lib").exists()
