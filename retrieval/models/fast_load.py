"""Towers in the form onnxruntime opens fastest: the graph in one file, its weights in another.

A tower stored as one protobuf file (how xmr and Immich export them) makes onnxruntime parse
and copy every weight out of the protobuf: ViT-B-32's 254 MB text tower takes ~0.85 s to open
on a 2-core machine. The same graph with its weights in an external file opens in ~0.3 s,
because onnxruntime maps that file instead (benchmarks/README.md, "Opening a tower").

So the first time a large tower is opened, xmr writes that form of it into its cache
(``$XDG_CACHE_HOME/xmr/onnx-fast/<sha256 of the tower file>/``) with onnxruntime itself: no
optimisation is applied, so it is the same graph with the same weights, and its outputs are
bit-identical to the original's (tested). The copy is built in a temporary folder and renamed
into place; it is keyed by the source file's sha256, so it is never stale. A copy that cannot
be written (a read-only or full disk) or opened is only a lost speed-up: the original is used.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import shutil
from pathlib import Path
from typing import Any

from index.atomic import remove_stale_temps, temp_dir
from retrieval.models.specs import file_sha256

log = logging.getLogger(__name__)

FAST_DIR = "onnx-fast"
# 1: the graph as onnxruntime saves it unoptimised, weights of >= 1 KiB in model.onnx.data.
FORMAT_VERSION = 1
MODEL = "model.onnx"
DATA = "model.onnx.data"
SOURCE = "source.json"  # what the copy was made from (for people reading the cache)
MIN_BYTES = 32 << 20  # towers smaller than this open fast as they are (and external-data graphs are small)


def fast_dir() -> Path:
    """Where the fast-load copies live (``$XDG_CACHE_HOME/xmr/onnx-fast``)."""
    base = os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache")
    return Path(base) / "xmr" / FAST_DIR


def fast_tower(path: Path, ort: Any) -> Path:
    """The file to open for the tower ``path``: its fast-load copy, made now if missing, or
    ``path`` itself (a small tower, or a copy that cannot be made).

    Args:
        path: an ONNX tower file.
        ort: the imported ``onnxruntime`` module (the caller has imported it already).
    """
    path = Path(path)
    try:
        if path.stat().st_size < MIN_BYTES:
            return path
        digest = file_sha256(path)
        target = fast_dir() / f"{digest[:40]}-v{FORMAT_VERSION}"
    except OSError:
        return path  # the caller's open says what is wrong with the file
    if (target / MODEL).is_file() and (target / DATA).is_file():
        return target / MODEL
    try:
        return _make(path, digest, target, ort)
    except Exception as exc:  # noqa: BLE001 (a disk, permission or onnxruntime failure only costs speed)
        # info, not warning: a read-only cache would repeat it on every search, and costs only speed
        log.info("could not write a fast-load copy of %s (%s); opening it as it is", path, exc)
        return path


def forget(copy: Path) -> None:
    """Remove a fast-load copy that failed to open (the next open makes it again)."""
    if copy.parent.parent == fast_dir():
        shutil.rmtree(copy.parent, ignore_errors=True)


def _make(path: Path, digest: str, target: Path, ort: Any) -> Path:
    """Write the copy of ``path`` (sha256 ``digest``) into ``target`` (a temp folder renamed into place)."""
    target.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_temps(target.parent, folders=True)  # copies of killed processes
    log.info("writing a fast-load copy of %s (once per model)", path)
    tmp = temp_dir(target)
    try:
        options = ort.SessionOptions()
        options.log_severity_level = 3
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL  # the same graph
        options.optimized_model_filepath = str(tmp / MODEL)
        options.add_session_config_entry("session.optimized_model_external_initializers_file_name", DATA)
        options.add_session_config_entry("session.optimized_model_external_initializers_min_size_in_bytes", "1024")
        ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        if not (tmp / MODEL).is_file() or not (tmp / DATA).is_file():
            raise OSError(f"onnxruntime wrote no {MODEL} with {DATA}")
        for name in (MODEL, DATA):
            with open(tmp / name, "rb+") as handle:
                os.fsync(handle.fileno())
        source = {"source": str(path), "sha256": digest, "onnxruntime": ort.__version__}
        (tmp / SOURCE).write_text(json.dumps(source, indent=1), encoding="utf-8")
        try:
            os.rename(tmp, target)
        except OSError:
            if not (target / MODEL).is_file():  # not another process's copy that won the race
                raise
    finally:
        if tmp.exists():
            with contextlib.suppress(OSError):
                shutil.rmtree(tmp)
    return target / MODEL
