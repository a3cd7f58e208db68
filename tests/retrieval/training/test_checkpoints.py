"""RunFolder: the checkpoint and state file both trainers resume from."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from retrieval.errors import RerankerError
from retrieval.training.checkpoints import CHECKPOINT, STATE, RunFolder


def _parts(seed: int) -> dict[str, object]:
    torch.manual_seed(seed)
    net = torch.nn.Linear(3, 2)
    optimizer = torch.optim.AdamW(net.parameters(), lr=0.1)
    net(torch.ones(1, 3)).sum().backward()
    optimizer.step()  # optimiser state worth restoring
    return {"net": net, "optimizer": optimizer}


def test_save_then_load_restores_weights_optimiser_and_step(tmp_path: Path) -> None:
    run = RunFolder(tmp_path / "run", {"config": {"lr": 0.1}}, RerankerError)
    saved = _parts(0)
    run.save(saved, step=7)
    fresh = _parts(1)
    assert run.load(fresh) == 7
    assert torch.equal(fresh["net"].weight, saved["net"].weight)
    assert (
        fresh["optimizer"]
        .state_dict()["state"][0]["exp_avg"]
        .equal(saved["optimizer"].state_dict()["state"][0]["exp_avg"])
    )
    assert json.loads((tmp_path / "run" / STATE).read_text()) == {"config": {"lr": 0.1}, "step": 7, "done": False}


def test_a_run_with_other_settings_is_refused_by_name(tmp_path: Path) -> None:
    RunFolder(tmp_path, {"config": {"lr": 0.1}, "encoder": {"sha": "a"}}, RerankerError, "reranker run").save(
        _parts(0), 3
    )
    same = RunFolder(tmp_path, {"config": {"lr": 0.1}, "encoder": {"sha": "a"}}, RerankerError, "reranker run")
    assert same.resume_state()["step"] == 3
    other = RunFolder(tmp_path, {"config": {"lr": 0.1}, "encoder": {"sha": "b"}}, RerankerError, "reranker run")
    with pytest.raises(RerankerError, match="holds a reranker run with other settings or another encoder"):
        other.resume_state()


def test_a_damaged_checkpoint_says_so_and_names_the_fix(tmp_path: Path) -> None:
    run = RunFolder(tmp_path, {"config": {}}, RerankerError)
    run.save(_parts(0), 2)
    (tmp_path / CHECKPOINT).write_bytes(b"not a checkpoint")
    with pytest.raises(RerankerError, match="(?s)unreadable.*delete it to start the run over"):
        run.load(_parts(1))


def test_finish_drops_the_checkpoint_and_marks_the_run_done(tmp_path: Path) -> None:
    run = RunFolder(tmp_path, {"config": {"steps": 5}}, RerankerError)
    assert run.load(_parts(0)) == 0  # a new run starts at step 0
    run.save(_parts(0), 4)
    run.finish(5)
    assert not (tmp_path / CHECKPOINT).exists()
    assert run.resume_state() == {"config": {"steps": 5}, "step": 5, "done": True}


def test_a_damaged_state_file_says_so_and_names_the_fix(tmp_path: Path) -> None:
    (tmp_path / STATE).write_text('{"config": ')  # torn by a crash or an editor
    with pytest.raises(RerankerError, match=f"unreadable.*delete it and {CHECKPOINT}"):
        RunFolder(tmp_path, {"config": {}}, RerankerError).resume_state()


def test_a_run_removes_the_temp_files_of_killed_runs_and_keeps_live_ones(tmp_path: Path) -> None:
    import subprocess
    import sys

    from index.atomic import writer_tag

    ended = subprocess.Popen([sys.executable, "-c", "pass"])
    ended.wait(timeout=60)
    dead = tmp_path / f".{CHECKPOINT}.{writer_tag(ended.pid)}.a1b2.tmp"  # a run killed while checkpointing
    live = tmp_path / f".{CHECKPOINT}.{writer_tag()}.c3d4.tmp"  # a writer still at work (this process)
    for temp in (dead, live):
        temp.write_bytes(b"half a checkpoint")
    assert RunFolder(tmp_path, {"config": {}}, RerankerError).resume_state() == {}
    assert not dead.exists() and live.exists()
