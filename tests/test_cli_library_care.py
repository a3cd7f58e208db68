"""The CLI of issue 20: xmr duplicates, index --exclude/--forget-exclude/--no-follow and what index says."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

import cli


@pytest.fixture
def run(tmp_path: Path, tiny_model_dir: Path):  # noqa: ANN201
    library = tmp_path / "library"
    runner = CliRunner()

    def _run(*args: str):  # noqa: ANN202
        return runner.invoke(cli.app, [*args, "--library", str(library)])

    _run.model = f"local-dir:{tiny_model_dir}"  # type: ignore[attr-defined]
    return _run


def test_duplicates_json_text_and_exit_codes(run, photos: Path) -> None:  # noqa: ANN001
    assert run("index", str(photos), "--model", run.model).exit_code == 0
    none = run("duplicates", "--tier", "exact")
    assert none.exit_code == 1 and "0 groups" in none.output and "Nothing was changed" in none.output

    original = next(photos.rglob("astronaut.jpg"))
    shutil.copy2(original, photos / "astronaut-copy.jpg")
    assert run("index", str(photos)).exit_code == 0
    lines = run("duplicates", "--tier", "exact", "--json").stdout.splitlines()
    (group,) = [json.loads(line) for line in lines]
    assert group["tier"] == "exact" and group["keeper"] == group["members"][0]["id"]
    assert {Path(m["path"]).name for m in group["members"]} == {"astronaut.jpg", "astronaut-copy.jpg"}
    table = run("duplicates", "--tier", "exact,near", "--min-score", "0.99")
    assert table.exit_code == 0 and "keep" in table.stdout and "astronaut-copy.jpg" in table.stdout
    bad = run("duplicates", "--tier", "blurry")
    assert bad.exit_code == 2 and "exact, near, similar" in bad.output
    assert original.exists() and (photos / "astronaut-copy.jpg").exists()


def test_index_excludes_are_remembered_said_and_forgotten(run, photos: Path) -> None:  # noqa: ANN001
    (photos / "#recycle").mkdir()
    shutil.copy(next(photos.rglob("rocket.*")), photos / "#recycle" / "old.jpg")
    first = json.loads(run("index", str(photos), "--model", run.model, "--json").stdout)
    assert first["added"] == 6 and first["excluded"] == 1

    text = run("index", str(photos), "--exclude", "nested/")
    assert text.exit_code == 0 and "removed, now excluded:" in text.output and "nested" in text.output
    info = json.loads(run("info", "--json").stdout)
    assert info["exclude"] == ["nested/"] and info["images"] == 4

    back = json.loads(run("index", str(photos), "--forget-exclude", "nested/", "--json").stdout)
    assert back["added"] == 2 and json.loads(run("info", "--json").stdout)["exclude"] == []
    bad = run("index", str(photos), "--exclude", "!")
    assert bad.exit_code == 2 and "gitignore" in bad.output


def test_index_lists_links_not_followed_and_raw_files_it_cannot_read(
    run,
    photos: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,  # noqa: ANN001
) -> None:
    from retrieval.images import decode

    (photos / "elsewhere").symlink_to(tmp_path)
    (photos / "IMG_0001.NEF").write_bytes(b"II*\0")
    monkeypatch.setattr(decode, "raw_available", lambda: False)
    decode.image_extensions.cache_clear()
    try:
        result = run("index", str(photos), "--model", run.model, "--no-follow")
    finally:
        decode.image_extensions.cache_clear()
    assert result.exit_code == 0, result.output
    assert "symbolic links to folders not walked:" in result.output and "elsewhere" in result.output
    assert "1 RAW files not indexed: pip install 'xmr[raw]'" in result.output and "IMG_0001.NEF" in result.output
