"""Crash tests: SIGKILL at the writes of each command that writes, then a completed rerun.

As SQLite's own tests do, a command is killed at its Kth write (K = 1, 2, ...), and what it
leaves is checked once a rerun has completed: against an oracle computed from the files on
disk for ``xmr index`` (every readable image once, its vector a fresh embedding, its captions
what its sidecars and EXIF say, snapshots at the catalog's generation, no temp file left,
``xmr search --image`` finding sampled files first), against the texts file for ``xmr
add-texts``/``remove-texts``, and against an uninterrupted run with the same seed for ``xmr
train``/``train-reranker``. The photo tree changes between the killed run and the rerun.

Faults come from strace (``-e inject=...:signal=SIGKILL:when=K``: every write the process
makes, SQLite's own included) where it is installed, else from a hook of our own (each
Python-level replace, fsync, unlink and catalog commit); the test id says which ran, and the
other is skipped with the reason. The default run tries a handful of points per command; the
sweep (both mechanisms; per syscall class the first ``$XMR_CRASH_FIRST`` calls, default 12, and
as many spread over the rest; every hook event) is ``pytest -m crash_full tests/test_crash.py``.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import numpy as np
import pytest

from tests.helpers.crash_oracle import Embeddings, library_problems, temp_files, texts_problems
from tests.helpers.crash_runner import Crash, Outcome, Runner, strace_available
from tests.helpers.crash_tally import Tally, kill_points, sweep_first, write_report
from tests.helpers.photo_tree import PhotoTree, readable
from tests.helpers.tiny_model import TINY_CFG

MECHANISMS = ("strace", "hook")
DEPTHS = ("quick", pytest.param("sweep", marks=[pytest.mark.crash_full, pytest.mark.timeout(4 * 3600)]))
QUICK = {"index": (1, 3), "texts": (1, 1), "train": 2, "train-reranker": 2}  # kill points per stage, default run


@pytest.fixture(scope="module")
def runner(tmp_path_factory: pytest.TempPathFactory):  # noqa: ANN201
    """The warm process that forks each command (see tests/helpers/crash_runner.py)."""
    home = tmp_path_factory.mktemp("crash-home")
    repo = Path(__file__).resolve().parents[1]
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(repo), os.environ.get("PYTHONPATH", "")]).rstrip(os.pathsep),
        "HF_HUB_OFFLINE": "1",
        "XDG_CACHE_HOME": str(home / "cache"),
        "XDG_DATA_HOME": str(home / "data"),
        "OMP_NUM_THREADS": "1",  # one thread per forked run: same results, no oversubscribed cores
        "MKL_NUM_THREADS": "1",
        "TOKENIZERS_PARALLELISM": "false",
    }
    env.pop("XMR_LIBRARY", None)
    with Runner(env, home / "runs") as warm:
        yield warm


@pytest.fixture(scope="module")
def model(runner: Runner, tiny_model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> str:
    """The tiny model as ``--model``, its ONNX export already in the runner's cache (an index
    run exports it once: that first run's writes are not what the kill points are about)."""
    spec = f"local-dir:{tiny_model_dir}"
    scratch = tmp_path_factory.mktemp("crash-warm")
    tree = PhotoTree(scratch / "photos", seed=0, count=1)
    argv = ["index", str(tree.root), "--library", str(scratch / "library"), "--model", spec, "--device", "cpu"]
    _completed(runner.run(argv), "the warm-up index run")
    return spec


@pytest.fixture(scope="module")
def tallies() -> list[Tally]:
    """Every test's tally; each is added to ``$XMR_CRASH_REPORT`` as soon as its test ends."""
    return []


@pytest.fixture(params=MECHANISMS)
def mechanism(request: pytest.FixtureRequest) -> str:
    """strace where installed, else the hook; a sweep (``depth`` sweep) runs both."""
    depth = request.node.callspec.params.get("depth", "quick")
    if request.param == "strace" and not strace_available():
        pytest.skip("strace is not installed here: the hook ran instead (apt-get install strace for the full kill)")
    if request.param == "hook" and depth == "quick" and strace_available():
        pytest.skip("strace ran instead (the hook runs in the sweep: pytest -m crash_full)")
    return request.param


def _points(mechanism: str, counted: Outcome, depth: str, quick: int) -> list[Crash]:
    """``quick`` kill points spread over the run (default run), or the sweep's (see kill_points)."""
    if depth == "quick":
        return kill_points(mechanism, counted, limit=quick)
    return kill_points(mechanism, counted, first=sweep_first())


def _verdict(tally: Tally, tallies: list[Tally]) -> None:
    tallies.append(tally)
    write_report([tally])
    print(tally.summary())
    assert tally.killed > 0, f"no run was killed: {tally.summary()}"
    assert tally.problems == [], "\n".join([tally.summary(), *tally.problems[:40]])


def _replace_dir(source: Path | None, target: Path) -> None:
    """``target`` becomes a copy of ``source`` (None: it is removed)."""
    shutil.rmtree(target, ignore_errors=True)
    if source is not None:
        shutil.copytree(source, target, copy_function=shutil.copy2)


def _completed(outcome: Outcome, what: str) -> None:
    assert outcome.returncode == 0 and not outcome.killed, f"{what} failed:\n{outcome.stderr[-3000:]}"


# ---- xmr index ---------------------------------------------------------------------------


def _search_problems(runner: Runner, library: Path, tree: PhotoTree, seed: int) -> list[str]:
    """``xmr search --image`` of a sampled readable file finds that file (or a byte-identical copy) first."""
    images = [p for p in tree.images() if readable(p)]
    if not images:
        return []
    sample = images[int(np.random.default_rng(seed).integers(len(images)))]
    found = runner.run(["search", "--image", str(sample), "--library", str(library), "--json", "-k", "3"])
    if found.returncode != 0:
        return [f"search --image {sample} failed: {found.stderr[-500:]}"]
    first = Path(json.loads(found.stdout.splitlines()[0])["path"])
    if not first.is_file() or first.read_bytes() != sample.read_bytes():
        return [f"search --image {sample} found {first} first"]
    return []


@pytest.mark.parametrize("depth", DEPTHS)
def test_index_converges_after_a_kill_at_any_write(
    runner: Runner, mechanism: str, depth: str, tallies: list[Tally], tmp_path: Path, model: str, tiny_encoder
) -> None:  # noqa: ANN001
    tree = PhotoTree(tmp_path / "photos", seed=11, count=8)
    library, saved = tmp_path / "library", tmp_path / "saved-library"
    argv = ["index", str(tree.root), "--library", str(library), "--model", model]
    argv += ["--device", "cpu", "--json", "--batch-size", "2", "--workers", "1"]
    embeddings, tally = Embeddings(tiny_encoder), Tally("index", mechanism, depth)
    for stage in range(2):  # a new library, then an incremental run over a changed tree
        if stage == 1:
            _completed(runner.run(argv), "xmr index")
            tree.change(seed=1000, count=8)
            _replace_dir(library, saved)
        start = tree.state()
        counted = runner.run(argv, count=mechanism)
        _completed(counted, "the counting run")
        for i, point in enumerate(_points(mechanism, counted, depth, QUICK["index"][stage])):
            tree.restore(start)
            _replace_dir(saved if stage else None, library)
            killed = runner.run(argv, crash=point)
            temps = len(temp_files(library)) if library.exists() else 0
            # What the user did before the rerun: what left stale captions before (a photo moved
            # away from its sidecars, one whose sidecars went while its timestamp alone changed), and more.
            changes = tree.change(seed=stage * 10_000 + i, count=3, first=("strand", "retouch"))
            rerun = runner.run(argv)
            problems = [f"rerun failed: {rerun.stderr[-1500:]}"] if rerun.returncode else []
            if not problems:
                problems = library_problems(library, tree.root, embeddings)
                problems += _search_problems(runner, library, tree, seed=i)
            tally.record(point, killed, temps, problems, note=f", stage {stage}, then {'; '.join(changes)}")
    _verdict(tally, tallies)


# ---- xmr add-texts / remove-texts ----------------------------------------------------------


@pytest.mark.parametrize("depth", DEPTHS)
def test_add_and_remove_texts_converge_after_a_kill_at_any_write(
    runner: Runner, mechanism: str, depth: str, tallies: list[Tally], tmp_path: Path, model: str, tiny_encoder
) -> None:  # noqa: ANN001
    tree = PhotoTree(tmp_path / "photos", seed=12, count=4)
    library, saved = tmp_path / "library", tmp_path / "saved-library"
    index = ["index", str(tree.root), "--library", str(library), "--model", model, "--device", "cpu"]
    _completed(runner.run(index), "xmr index")
    texts = tmp_path / "texts.txt"
    lines = ["a red ball", "sunset over water", "a cat on a mat", "two dogs", "a blue square", "rain"]
    texts.write_text("".join(f"{line}\n" for line in lines[:4]))
    embeddings, tally = Embeddings(tiny_encoder), Tally("add-texts, remove-texts", mechanism, depth)
    for stage, command in enumerate(("add-texts", "remove-texts")):
        if command == "remove-texts":
            texts.write_text("".join(f"{line}\n" for line in lines))
            _completed(runner.run(["add-texts", str(texts), "--library", str(library)]), "xmr add-texts")
        _replace_dir(library, saved)
        argv = [command, str(texts), "--library", str(library)]
        counted = runner.run(argv, count=mechanism)
        _completed(counted, f"the counting run of xmr {command}")
        for point in _points(mechanism, counted, depth, QUICK["texts"][stage]):
            _replace_dir(saved, library)
            texts.write_text("".join(f"{line}\n" for line in lines[: 4 if stage == 0 else 6]))
            killed = runner.run(argv, crash=point)
            temps = len(temp_files(library))
            if command == "add-texts":
                texts.write_text("".join(f"{line}\n" for line in lines))  # lines added before the rerun
            rerun = runner.run(argv)
            want = lines if command == "add-texts" else []
            problems = [f"rerun failed: {rerun.stderr[-1500:]}"] if rerun.returncode else []
            problems = problems or texts_problems(library, texts, want, embeddings)
            tally.record(point, killed, temps, problems, note=f", {command}")
    _verdict(tally, tallies)


# ---- xmr train / train-reranker ----------------------------------------------------------


@pytest.fixture(scope="module")
def pairs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from retrieval.training import shapes_world

    return shapes_world.generate(
        tmp_path_factory.mktemp("crash-pairs") / "pairs", count=16, seed=2, size=32, split="train"
    ).parent


def _weights(folder: Path, name: str) -> dict[str, np.ndarray]:
    from safetensors.numpy import load_file

    return load_file(str(folder / name))


def _training_problems(out: Path, reference: dict[str, np.ndarray], name: str) -> list[str]:
    """The resumed run's weights are the uninterrupted run's; the folder holds no temp or checkpoint."""
    problems = [f"temp file left in the run folder: {t}" for t in temp_files(out)]
    if (out / "checkpoint.pt").exists():
        problems.append("checkpoint.pt left behind by a finished run")
    if not json.loads((out / "train.json").read_text()).get("done"):
        problems.append("train.json does not say the run is done")
    got = _weights(out, name)
    if sorted(got) != sorted(reference):
        return [*problems, f"other tensors than the uninterrupted run's: {sorted(set(got) ^ set(reference))}"]
    worst = max(float(np.abs(got[k].astype(np.float64) - reference[k]).max()) for k in reference)
    if worst > 1e-6:
        problems.append(f"weights differ from the uninterrupted run's by up to {worst:.3g}")
    return problems


def _training_sweep(runner: Runner, argv: list[str], out: Path, name: str, tally: Tally, quick: int) -> None:
    counted = runner.run([*argv, "--out", str(out / "reference")], count=tally.mechanism)
    _completed(counted, f"the uninterrupted xmr {tally.command}")
    reference = _weights(out / "reference", name)
    for point in _points(tally.mechanism, counted, tally.depth, quick):
        folder = out / "resumed"
        shutil.rmtree(folder, ignore_errors=True)
        killed = runner.run([*argv, "--out", str(folder)], crash=point)
        temps = len(temp_files(folder)) if folder.exists() else 0
        rerun = runner.run([*argv, "--out", str(folder)])
        problems = [f"rerun failed: {rerun.stderr[-1500:]}"] if rerun.returncode else []
        tally.record(point, killed, temps, problems or _training_problems(folder, reference, name))


@pytest.mark.parametrize("depth", DEPTHS)
def test_train_resumes_to_the_uninterrupted_weights_after_a_kill_at_any_write(
    runner: Runner, mechanism: str, depth: str, tallies: list[Tally], tmp_path: Path, pairs: Path
) -> None:
    arch = tmp_path / "tiny-arch.json"
    arch.write_text(json.dumps(TINY_CFG))
    argv = ["train", str(pairs), "--arch", str(arch), "--steps", "3", "--batch-size", "8", "--warmup", "1"]
    argv += ["--seed", "4", "--checkpoint-seconds", "0"]
    tally = Tally("train", mechanism, depth)
    _training_sweep(runner, argv, tmp_path, "open_clip_model.safetensors", tally, QUICK["train"])
    _verdict(tally, tallies)


@pytest.mark.parametrize("depth", DEPTHS)
def test_train_reranker_resumes_to_the_uninterrupted_weights_after_a_kill_at_any_write(
    runner: Runner, mechanism: str, depth: str, tallies: list[Tally], tmp_path: Path, pairs: Path, tiny_model_dir: Path
) -> None:
    argv = ["train-reranker", str(pairs), "--model", f"local-dir:{tiny_model_dir}", "--device", "cpu"]
    argv += ["--steps", "3", "--batch-size", "4", "--width", "16", "--layers", "1", "--pool", "1"]
    argv += ["--relation-steps", "1", "--seed", "4", "--checkpoint-seconds", "0"]
    tally = Tally("train-reranker", mechanism, depth)
    _training_sweep(runner, argv, tmp_path, "reranker.safetensors", tally, QUICK["train-reranker"])
    _verdict(tally, tallies)


# ---- the hook itself ------------------------------------------------------------------------

THREE_WRITES = """
import sys
from pathlib import Path
from index.atomic import atomic_write_bytes
for name in ("one", "two", "three"):
    atomic_write_bytes(Path(sys.argv[1]) / name, name.encode())  # fsync the temp, rename it, fsync the folder
"""


def test_the_hook_kills_just_before_the_kth_write_and_the_next_run_cleans_up(tmp_path: Path) -> None:
    import signal
    import subprocess
    import sys

    from index.atomic import remove_stale_temps

    repo = Path(__file__).resolve().parents[1]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(repo), str(repo / "tests/helpers/crash_site")])}
    env["XMR_CRASH_AT"] = "5"  # the second file's rename: its temp was written and fsynced
    done = subprocess.run([sys.executable, "-c", THREE_WRITES, str(tmp_path)], env=env, cwd=repo, timeout=120)
    assert done.returncode == -signal.SIGKILL
    assert sorted(p.name for p in tmp_path.iterdir() if not p.name.startswith(".")) == ["one"]
    assert len(temp_files(tmp_path)) == 1 and temp_files(tmp_path)[0].startswith(".two.")
    assert remove_stale_temps(tmp_path) == 1 and temp_files(tmp_path) == []
