"""Manifest, model identity, the write lock (across real processes), atomic writes, layout."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pytest

from index.atomic import STALE_SECONDS, atomic_write_bytes, atomic_writer, remove_stale_temps, writer_tag
from index.errors import CorruptFileError, LibraryBusyError, LibraryVersionError
from index.layout import ENV_LIBRARY, LibraryLayout, default_library_dir
from index.lock import WriteLock
from index.manifest import (
    MANIFEST_NAME,
    SCHEMA_VERSION,
    Manifest,
    ModelIdentity,
    manifest_path,
    read_manifest,
    write_manifest,
)

REPO = Path(__file__).resolve().parents[2]

TAGGED = ModelIdentity("ViT-B-32", "laion2b_s34b_b79k", "", 512, "ViT-B-32", "laion2b_s34b_b79k")
LOCAL = ModelIdentity("tiny", "local-dir", "ab" * 32, 32, "local-dir:/models/tiny")


# ---- manifest --------------------------------------------------------------------------


@pytest.mark.parametrize("model", [TAGGED, LOCAL], ids=["tagged", "local-weights"])
def test_manifest_round_trip(tmp_path: Path, model: ModelIdentity) -> None:
    manifest = Manifest(model=model, catalog_url="postgresql://db/xmr")
    write_manifest(tmp_path, manifest)
    assert read_manifest(tmp_path) == manifest
    raw = json.loads((tmp_path / MANIFEST_NAME).read_text())
    assert raw["format"] == "xmr-library" and raw["schema"] == SCHEMA_VERSION
    assert raw["model"]["embed_dim"] == model.embed_dim
    assert sorted(p.name for p in tmp_path.iterdir()) == [MANIFEST_NAME]  # no temp left


def test_manifest_rewrite_replaces_it(tmp_path: Path) -> None:
    write_manifest(tmp_path, Manifest(model=TAGGED))
    write_manifest(tmp_path, Manifest(model=LOCAL))
    loaded = read_manifest(tmp_path)
    assert loaded is not None and loaded.model == LOCAL and loaded.catalog_url == ""


def test_missing_manifest_is_none(tmp_path: Path) -> None:
    assert read_manifest(tmp_path) is None
    assert read_manifest(tmp_path / "does-not-exist") is None


def _write_raw(directory: Path, body: object) -> None:
    manifest_path(directory).write_text(body if isinstance(body, str) else json.dumps(body))


def _good_body() -> dict:
    return json.loads(Manifest(model=TAGGED).to_json())


@pytest.mark.parametrize(
    "body",
    [
        "{not json",
        "",
        "[1, 2, 3]",
        {"format": "something-else", "schema": 1, "model": TAGGED.to_dict()},
        {"format": "xmr-library", "schema": 1},  # no model
        {"format": "xmr-library", "schema": 1, "model": {"arch": "ViT-B-32"}},  # model fields missing
        {"format": "xmr-library", "schema": 1, "model": "ViT-B-32"},  # model not an object
        {"format": "xmr-library", "schema": 1, "model": ["ViT-B-32"]},
    ],
    ids=["bad-json", "empty", "list", "other-format", "no-model", "model-fields", "model-str", "model-list"],
)
def test_corrupt_manifest(tmp_path: Path, body: object) -> None:
    _write_raw(tmp_path, body)
    with pytest.raises(CorruptFileError, match=MANIFEST_NAME):
        read_manifest(tmp_path)


def test_manifest_that_is_not_utf8_is_corrupt(tmp_path: Path) -> None:
    manifest_path(tmp_path).write_bytes(b"\xff\xfe\x00garbage\x80")
    with pytest.raises(CorruptFileError):
        read_manifest(tmp_path)


@pytest.mark.parametrize("schema", [SCHEMA_VERSION + 1, 10**6, "1", None])
def test_manifest_schema_newer_or_unknown_is_a_version_error(tmp_path: Path, schema: object) -> None:
    body = _good_body()
    body["schema"] = schema
    _write_raw(tmp_path, body)
    with pytest.raises(LibraryVersionError, match="(?i)upgrade"):
        read_manifest(tmp_path)


def test_manifest_ignores_model_fields_it_does_not_know(tmp_path: Path) -> None:
    body = _good_body()
    body["model"]["quantization"] = "int8"  # written by a later minor version
    _write_raw(tmp_path, body)
    loaded = read_manifest(tmp_path)
    assert loaded is not None and loaded.model == TAGGED


# ---- model identity ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("a", "b", "same"),
    [
        (TAGGED, TAGGED, True),
        (TAGGED, replace(TAGGED, spec="hf-hub:x/y", spec_pretrained=""), True),  # loaded another way
        (TAGGED, replace(TAGGED, pretrained="openai"), False),  # tag differs
        (TAGGED, replace(TAGGED, embed_dim=768), False),  # dim differs
        (TAGGED, replace(TAGGED, arch="ViT-L-14"), False),
        (LOCAL, replace(LOCAL, weights_sha256="cd" * 32), False),  # sha differs
        (LOCAL, replace(LOCAL, pretrained="file", spec="file:/w.safetensors"), True),  # same bytes
        (LOCAL, replace(LOCAL, weights_sha256=""), False),  # one side has no hash
        (replace(LOCAL, embed_dim=64), LOCAL, False),
    ],
)
def test_same_model(a: ModelIdentity, b: ModelIdentity, same: bool) -> None:
    assert a.same_model(b) is same
    assert b.same_model(a) is same  # symmetric


def test_model_identity_label_and_dict_round_trip() -> None:
    assert TAGGED.label() == "ViT-B-32/laion2b_s34b_b79k"
    assert LOCAL.label().startswith("tiny (local-dir weights sha256 abababababab")
    for model in (TAGGED, LOCAL):
        assert ModelIdentity.from_dict(model.to_dict()) == model


# ---- write lock --------------------------------------------------------------------------

HOLDER = """
import sys
from index.lock import WriteLock
lock = WriteLock(sys.argv[1])
if not lock.acquire():
    sys.exit(3)
print("locked", flush=True)
sys.stdin.readline()
lock.release()
print("released", flush=True)
sys.stdin.readline()
"""

TRY = """
import sys
from index.errors import LibraryBusyError
from index.lock import WriteLock
try:
    with WriteLock(sys.argv[1]):
        pass
except LibraryBusyError as exc:
    print(exc)
    sys.exit(3)
"""


def _python(code: str, *args: str, **kwargs) -> subprocess.Popen:  # noqa: ANN003
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return subprocess.Popen([sys.executable, "-c", code, *args], cwd=REPO, env=env, text=True, **kwargs)


def _try_from_another_process(lock_path: Path) -> tuple[int, str]:
    proc = _python(TRY, str(lock_path), stdout=subprocess.PIPE)
    out, _ = proc.communicate(timeout=60)
    return proc.returncode, out


def test_lock_held_here_refuses_another_process_until_released(tmp_path: Path) -> None:
    path = tmp_path / "lib" / "write.lock"
    lock = WriteLock(path)
    with lock:
        rc, out = _try_from_another_process(path)
        assert rc == 3, out
        assert f"pid {os.getpid()}" in out and "another xmr process" in out
    rc, out = _try_from_another_process(path)
    assert rc == 0, out


@pytest.fixture
def holder(tmp_path: Path):  # noqa: ANN201
    """Another process that holds the lock until told to release it."""
    path = tmp_path / "write.lock"
    proc = _python(HOLDER, str(path), stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    assert proc.stdout is not None and proc.stdout.readline().strip() == "locked"
    yield proc, path
    if proc.poll() is None:
        proc.kill()
    proc.wait(timeout=60)


def test_lock_held_by_another_process_raises_busy_until_released(holder) -> None:  # noqa: ANN001
    proc, path = holder
    with pytest.raises(LibraryBusyError, match=f"pid {proc.pid}"):
        with WriteLock(path):
            pass
    assert WriteLock(path).acquire() is False
    proc.stdin.write("\n")
    proc.stdin.flush()
    assert proc.stdout.readline().strip() == "released"
    with WriteLock(path) as lock:
        assert path.read_text() == str(os.getpid())
        assert lock.path == path
    proc.stdin.write("\n")
    proc.stdin.flush()
    assert proc.wait(timeout=60) == 0


def test_lock_of_a_process_killed_with_sigkill_is_free(holder) -> None:  # noqa: ANN001
    proc, path = holder
    assert WriteLock(path).acquire() is False
    proc.kill()  # SIGKILL: no chance to release
    assert proc.wait(timeout=60) == -signal.SIGKILL
    with WriteLock(path):
        rc, _ = _try_from_another_process(path)
        assert rc == 3
    lock = WriteLock(path)
    assert lock.acquire() is True
    lock.release()


# ---- atomic writes -----------------------------------------------------------------------


def test_atomic_write_bytes_creates_and_replaces(tmp_path: Path) -> None:
    path = tmp_path / "deep" / "er" / "file.bin"
    atomic_write_bytes(path, b"first")
    assert path.read_bytes() == b"first"
    atomic_write_bytes(path, b"second, longer than the first")
    assert path.read_bytes() == b"second, longer than the first"
    atomic_write_bytes(path, b"")
    assert path.read_bytes() == b""
    assert [p.name for p in path.parent.iterdir()] == ["file.bin"]


def test_atomic_writer_failure_keeps_the_old_file(tmp_path: Path) -> None:
    path = tmp_path / "file.bin"
    atomic_write_bytes(path, b"old")
    with pytest.raises(KeyboardInterrupt):
        with atomic_writer(path) as out:
            out.write(b"half of the new")
            raise KeyboardInterrupt  # BaseException too: Ctrl-C mid-write
    assert path.read_bytes() == b"old"
    assert [p.name for p in tmp_path.iterdir()] == ["file.bin"]


def _dead_pid() -> int:
    """The pid of a process that has ended (and been reaped)."""
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait(timeout=60)
    return proc.pid


def test_remove_stale_temps_removes_only_temps_of_writers_that_are_gone(tmp_path: Path) -> None:
    keep = ["images.vec", "catalog.sqlite", "notes.tmp", ".hidden", "manifest.json"]
    for name in keep:
        (tmp_path / name).write_bytes(b"x")
    dead = writer_tag(_dead_pid())
    live = [f".images.vec.{writer_tag()}.k2j3h4.tmp", ".index.json.7-00000000.abc.tmp", ".texts.vec.q1w2.tmp"]
    stale = [f".images.vec.{dead}.k2j3h4.tmp", ".manifest.json.7-00000000.abc.tmp", ".texts.vec.z9x8.tmp"]
    for name in [*live, *stale]:
        (tmp_path / name).write_bytes(b"half")
    old = os.stat(tmp_path / "images.vec").st_mtime - STALE_SECONDS - 60
    for name in stale[1:]:  # another machine's, and an older xmr's: removed once they are old
        os.utime(tmp_path / name, (old, old))
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / f".x.{dead}.a.tmp").write_bytes(b"not at top level")
    assert remove_stale_temps(tmp_path) == 3
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([*keep, *live, "sub"])
    assert (tmp_path / "sub" / f".x.{dead}.a.tmp").exists()
    assert remove_stale_temps(tmp_path) == 0


KILLED_WRITER = """
import os, sys
from index.atomic import atomic_writer
with atomic_writer(sys.argv[1]) as out:
    out.write(b"half of the new contents")
    out.flush()
    os._exit(9)  # dies like kill -9: no cleanup runs
"""


def test_remove_stale_temps_cleans_up_after_a_killed_writer(tmp_path: Path) -> None:
    path = tmp_path / "images.vec"
    atomic_write_bytes(path, b"old")
    assert _python(KILLED_WRITER, str(path)).wait(timeout=60) == 9
    leftovers = [p.name for p in tmp_path.iterdir() if p.name != "images.vec"]
    assert len(leftovers) == 1 and leftovers[0].startswith(".images.vec.")
    assert path.read_bytes() == b"old"  # the killed write never became visible
    assert remove_stale_temps(tmp_path) == 1
    assert [p.name for p in tmp_path.iterdir()] == ["images.vec"]


# ---- layout ------------------------------------------------------------------------------


def test_default_library_dir_follows_the_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "data"))
    assert default_library_dir() == tmp_path / "data" / "xmr" / "default"
    monkeypatch.setenv(ENV_LIBRARY, str(tmp_path / "mine"))
    assert default_library_dir() == tmp_path / "mine"
    monkeypatch.delenv(ENV_LIBRARY)
    monkeypatch.delenv("XDG_DATA_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert default_library_dir() == tmp_path / "home" / ".local" / "share" / "xmr" / "default"


def test_layout_files(tmp_path: Path) -> None:
    layout = LibraryLayout(tmp_path)
    assert layout.manifest == manifest_path(tmp_path)
    assert layout.catalog_url() == f"sqlite:///{tmp_path / 'catalog.sqlite'}"
    assert layout.catalog_url("postgresql://db/x") == "postgresql://db/x"
    assert layout.bytes_on_disk() == 0
    atomic_write_bytes(layout.image_vectors, b"12345")
    layout.text_vectors.write_bytes(b"123")
    (tmp_path / "subdir").mkdir()
    assert layout.bytes_on_disk() == 8
