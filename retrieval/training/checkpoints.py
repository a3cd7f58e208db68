"""Resumable training runs: a run folder's checkpoint and its state file.

Both trainers (the encoder's, :mod:`retrieval.training.dual`, and the reranker's,
:mod:`retrieval.training.rerank_train`) keep ``checkpoint.pt`` (weights, optimiser state, step) and
``train.json`` (what the run is, its step, whether it is done) in the output folder, both
written atomically. A run resumes only with the settings it was started with: the state
file records them, and anything else is refused with a message naming the fix.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from index.atomic import atomic_write_bytes, atomic_writer, remove_stale_temps
from index.errors import XmrError

CHECKPOINT = "checkpoint.pt"
STATE = "train.json"


class Stateful(Protocol):
    """What a checkpoint holds a part of: a torch module or optimiser."""

    def state_dict(self) -> dict[str, Any]: ...
    def load_state_dict(self, state_dict: dict[str, Any]) -> object: ...


@dataclass(frozen=True)
class RunFolder:
    """A training run's folder: ``identity`` is what must match to resume (config, encoder...)."""

    out: Path
    identity: dict  # JSON-able; stored in the state file next to the step
    error: type[XmrError]  # raised for a mismatched run or an unreadable checkpoint
    what: str = "training run"  # how messages name the run

    def resume_state(self) -> dict:
        """The saved state (empty for a new run); temp files of runs that were killed mid-write
        (a checkpoint, the weights) are removed from the folder first.

        Raises:
            error: the folder holds a run with other settings, or its state file is unreadable.
        """
        path = self.out / STATE
        if self.out.is_dir():
            remove_stale_temps(self.out)
        if not path.is_file():
            return {}
        try:
            state = json.loads(path.read_text())
            if not isinstance(state, dict):
                raise ValueError("not a JSON object")
        except (OSError, ValueError) as exc:
            raise self.error(
                f"{path} is unreadable ({exc}); delete it and {CHECKPOINT} there to start the run over, or pass another --out."
            ) from exc
        if any(state.get(key) != value for key, value in self.identity.items()):
            raise self.error(
                f"{self.out} holds a {self.what} with other settings{self._others()} ({path}); pass another --out, or repeat that run's settings to resume it."
            )
        return state

    def save(self, parts: dict[str, Stateful], step: int) -> None:
        """Checkpoint ``parts`` (name -> module or optimiser) at ``step``, then record the step."""
        import torch

        self.out.mkdir(parents=True, exist_ok=True)
        with atomic_writer(self.out / CHECKPOINT) as handle:
            torch.save({**{name: part.state_dict() for name, part in parts.items()}, "step": step}, handle)
        self._write_state(step, done=False)

    def load(self, parts: dict[str, Stateful]) -> int:
        """Restore ``parts`` from the checkpoint; the step to go on from (0 without one).

        Raises:
            error: the checkpoint is unreadable.
        """
        import torch

        path = self.out / CHECKPOINT
        if not path.is_file():
            return 0
        try:
            saved = torch.load(path, map_location="cpu", weights_only=True)
            for name, part in parts.items():
                part.load_state_dict(saved[name])
        except Exception as exc:  # a damaged checkpoint must say so, not crash obscurely
            raise self.error(f"checkpoint {path} is unreadable ({exc}); delete it to start the run over.") from exc
        return int(saved["step"])

    def finish(self, step: int) -> None:
        """Mark the run done (a rerun returns at once) and drop the checkpoint."""
        (self.out / CHECKPOINT).unlink(missing_ok=True)  # optimiser state is 2x the weights; the run is done
        self._write_state(step, done=True)

    def _write_state(self, step: int, done: bool) -> None:
        atomic_write_bytes(
            self.out / STATE, json.dumps({**self.identity, "step": step, "done": done}, indent=2).encode()
        )

    def _others(self) -> str:
        extra = [key for key in self.identity if key != "config"]
        return f" or another {' or '.join(extra)}" if extra else ""
