"""open_clip's registries of architectures and pretrained weights, read without importing open_clip.

``import open_clip`` imports torch and torchvision: 5 to 20 seconds on a laptop CPU. Naming
an unknown architecture, or asking offline for weights that were never downloaded, should
be refused in a second, so the names are read from open_clip's files instead: the
architecture configs (``model_configs/*.json``) and, with :mod:`ast` (nothing is run), the
literal tables of ``pretrained.py``. What cannot be read this way (an entry built by code,
a layout of another open_clip version) is ``None``, "not known here": callers then ask
open_clip itself, so this is a fast path, never a second opinion.
"""

from __future__ import annotations

import ast
import functools
import importlib.util
import json
from pathlib import Path

__all__ = ["architecture_config", "architectures", "pretrained_sources"]


@functools.cache
def _package_dir() -> Path | None:
    """open_clip's folder, found without running its ``__init__``; None when not installed."""
    try:
        spec = importlib.util.find_spec("open_clip")
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(next(iter(spec.submodule_search_locations)))


@functools.cache
def architectures() -> frozenset[str]:
    """The architecture names open_clip ships configs for (empty when it is not installed)."""
    folder = _package_dir()
    if folder is None or not (folder / "model_configs").is_dir():
        return frozenset()
    return frozenset(path.stem for path in (folder / "model_configs").glob("*.json"))


def architecture_config(name: str) -> dict | None:
    """The ``model_cfg`` of a shipped architecture (``embed_dim``, ``vision_cfg``, ...), or None."""
    folder = _package_dir()
    if folder is None or name not in architectures():
        return None
    try:
        return json.loads((folder / "model_configs" / f"{name}.json").read_text())
    except (OSError, ValueError):
        return None


def pretrained_sources(arch: str, tag: str) -> dict[str, str] | None:
    """``{"hf_hub": ..., "url": ...}`` of open_clip's weights ``arch``/``tag``, as written in its
    table; None when the table does not say (unknown pair, or an entry made by code)."""
    table = _pretrained_table()
    return table.get(arch, {}).get(tag.lower().replace("-", "_"))  # open_clip's own tag clean-up


@functools.cache
def _pretrained_table() -> dict[str, dict[str, dict[str, str]]]:
    folder = _package_dir()
    try:
        tree = ast.parse((folder / "pretrained.py").read_text()) if folder else None
    except (OSError, SyntaxError, ValueError):
        tree = None
    if tree is None:
        return {}
    groups: dict[str, dict[str, dict[str, str]]] = {}  # _VITB32 -> tag -> sources
    table: dict[str, str] = {}  # "ViT-B-32" -> "_VITB32"
    for node in tree.body:
        if not (isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name)):
            continue
        name, value = node.targets[0].id, node.value
        if _is_dict_call(value):
            groups[name] = _entries(value)  # type: ignore[arg-type]
        elif name == "_PRETRAINED" and isinstance(value, ast.Dict):
            for key, group in zip(value.keys, value.values):
                if not (isinstance(key, ast.Constant) and isinstance(key.value, str)):
                    continue
                if isinstance(group, ast.Name):
                    table[key.value] = group.id
                elif _is_dict_call(group):  # written inline
                    groups[f"inline {key.value}"] = _entries(group)  # type: ignore[arg-type]
                    table[key.value] = f"inline {key.value}"
    return {arch: groups[group] for arch, group in table.items() if group in groups}


def _is_dict_call(node: ast.AST | None) -> bool:
    return isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "dict"


def _entries(call: ast.Call) -> dict[str, dict[str, str]]:
    """tag -> sources of a ``dict(tag=_pcfg(...), ...)`` (entries not written literally are left out)."""
    entries = {k.arg: _sources(k.value) for k in call.keywords if k.arg and isinstance(k.value, ast.Call)}
    return {tag: sources for tag, sources in entries.items() if sources is not None}


def _sources(call: ast.Call) -> dict[str, str] | None:
    """The literal ``url=`` and ``hf_hub=`` of one ``_pcfg(...)`` entry; None when given otherwise."""
    if call.args:  # positional: not read here
        return None
    found = {"url": "", "hf_hub": ""}
    for keyword in call.keywords:
        if keyword.arg in found and isinstance(keyword.value, ast.Constant) and isinstance(keyword.value.value, str):
            found[keyword.arg] = keyword.value.value
        elif keyword.arg in found or keyword.arg is None:  # computed, or **kwargs
            return None
    return found if found["url"] or found["hf_hub"] else None
