"""Resolve what ``--model``/``--pretrained`` name, and the identity of the weights.

Accepted forms (the same in the CLI and the library API):
- an open_clip architecture name with a pretrained tag (``ViT-B-32`` + ``laion2b_s34b_b79k``),
  downloaded once by open_clip into its cache;
- an architecture name with a local weights file (``.pt``, ``.pth``, ``.bin``, ``.safetensors``);
- ``local-dir:PATH`` or a plain PATH: a folder with ``open_clip_config.json`` and weights;
- an architecture name with pretrained ``random`` (seeded random weights, for benchmarks).

Nothing here imports torch: resolution must be fast and must fail within seconds when
weights are neither cached nor reachable.
"""

from __future__ import annotations

import difflib
import hashlib
import json
import os
import socket
import threading
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlparse

from index.atomic import atomic_write_bytes
from index.manifest import ModelIdentity
from retrieval.errors import ModelNotFoundError, WeightsUnavailableError
from retrieval.models import registry

DEFAULT_MODEL = "ViT-B-32"
DEFAULT_PRETRAINED = "laion2b_s34b_b79k"
LOCAL_DIR = "local-dir:"
RANDOM = "random"
WEIGHT_SUFFIXES = (".safetensors", ".pt", ".pth", ".bin")
# open_clip's own preference among the checkpoints of a local folder.
_PREFERRED_CHECKPOINTS = (
    "open_clip_model.safetensors",
    "open_clip_pytorch_model.safetensors",
    "open_clip_pytorch_model.bin",
    "open_clip_pytorch_model.pth",
    "model.safetensors",
    "pytorch_model.bin",
)
_PROBE_SECONDS = 3.0
_HOW_TO_POINT_LOCALLY = (
    "Point xmr at local weights instead: --model ARCH --pretrained /path/to/weights.safetensors, "
    "or --model local-dir:/path/to/folder (a folder with open_clip_config.json and weights)."
)


@dataclass(frozen=True)
class ModelSpec:
    """What the user asked for; see the module docstring for the accepted forms."""

    model: str = DEFAULT_MODEL  # architecture name, "local-dir:PATH", "hf-hub:ORG/REPO" or a folder path
    pretrained: str = DEFAULT_PRETRAINED  # tag, weights file, or "random"; ignored for folders


@dataclass(frozen=True)
class ResolvedModel:
    """Everything needed to build the model, with nothing downloaded on the way."""

    identity: ModelIdentity  # what the weights are
    arch: str  # open_clip model name to pass to create_model_and_transforms
    checkpoint: str  # local weights file, or "" for random init
    model_cfg_dir: str  # local folder whose open_clip_config.json holds the config, or ""
    preprocess: tuple[tuple[str, str], ...] = ()  # preprocess overrides from the pretrained tag


def offline() -> bool:
    """True when the user asked for no network access (Hugging Face's own variables)."""
    flags = (os.environ.get("HF_HUB_OFFLINE", ""), os.environ.get("TRANSFORMERS_OFFLINE", ""))
    return any(flag.strip().lower() in {"1", "true", "yes", "on"} for flag in flags)


def resolve(spec: ModelSpec) -> ResolvedModel:
    """Resolve ``spec`` to local files, downloading tagged weights once if needed and possible.

    Raises:
        ModelNotFoundError: unknown architecture, tag, file or folder.
        WeightsUnavailableError: weights not cached and no network (fails within seconds).
    """
    model = spec.model.strip()
    if model.startswith(LOCAL_DIR):
        return _resolve_folder(Path(model[len(LOCAL_DIR) :]).expanduser())
    if model.startswith("hf-hub:"):
        return _resolve_hub_repo(model[len("hf-hub:") :])
    if os.sep in model or model.startswith(".") or Path(model).expanduser().is_dir():
        return _resolve_folder(Path(model).expanduser())
    return _resolve_named(model, (spec.pretrained or "").strip())


def _resolve_folder(folder: Path) -> ResolvedModel:
    folder = folder.resolve()
    config_path = folder / "open_clip_config.json"
    if not folder.is_dir():
        raise ModelNotFoundError(f"model folder {folder} does not exist. {_HOW_TO_POINT_LOCALLY}")
    if not config_path.is_file():
        raise ModelNotFoundError(
            f"{folder} has no open_clip_config.json, so it is not an open_clip model folder. "
            "Pass an architecture name with --pretrained FILE for bare weights files."
        )
    try:
        config = json.loads(config_path.read_text())
        embed_dim = int(config["model_cfg"]["embed_dim"])
    except (ValueError, KeyError, TypeError) as exc:
        raise ModelNotFoundError(f"{config_path} is not a valid open_clip config ({exc}).") from exc
    checkpoint = _folder_checkpoint(folder)
    identity = ModelIdentity(
        arch=str(config.get("model_name") or folder.name),
        pretrained="local-dir",
        weights_sha256=file_sha256(checkpoint),
        embed_dim=embed_dim,
        spec=f"{LOCAL_DIR}{folder}",
    )
    return ResolvedModel(identity, f"{LOCAL_DIR}{folder}", str(checkpoint), str(folder))


def _folder_checkpoint(folder: Path) -> Path:
    for name in _PREFERRED_CHECKPOINTS:
        if (folder / name).is_file():
            return folder / name
    found = sorted(p for p in folder.iterdir() if p.suffix in WEIGHT_SUFFIXES and p.is_file())
    if not found:
        raise ModelNotFoundError(
            f"{folder} has open_clip_config.json but no weights file "
            f"({', '.join(WEIGHT_SUFFIXES)}); copy the weights into the folder."
        )
    return found[0]


def _refuse_early(arch: str, pretrained: str) -> None:
    """Refuse an unknown architecture, or tagged weights that are neither cached nor
    downloadable now, from open_clip's files alone (:mod:`retrieval.models.registry`): in
    about a second instead of after the 5-20 s of importing open_clip and torch."""
    import sys

    known = registry.architectures()
    if known and arch not in known and "open_clip" not in sys.modules:  # loaded: its own list may hold more
        close = difflib.get_close_matches(arch, sorted(known), n=3)
        hint = f" Did you mean {', '.join(close)}?" if close else ""
        raise ModelNotFoundError(f"unknown model {arch!r}.{hint} {_HOW_TO_POINT_LOCALLY}")
    if not pretrained or pretrained.lower() in {RANDOM, "none"}:
        return
    weights = Path(pretrained).expanduser()
    if weights.suffix in WEIGHT_SUFFIXES or weights.exists():
        return  # a file: checked with open_clip's config below
    sources = registry.pretrained_sources(arch, pretrained)
    if sources is not None and not _cached(sources):
        _check_downloadable(_host(sources), f"{arch} / {pretrained}")


def _resolve_named(arch: str, pretrained: str) -> ResolvedModel:
    _refuse_early(arch, pretrained)
    import open_clip  # deferred: pulls in torch; needed for the config registry

    if arch not in open_clip.list_models():
        close = difflib.get_close_matches(arch, open_clip.list_models(), n=3)
        hint = (
            f" Did you mean {', '.join(close)}?"
            if close
            else " See  python -c 'import open_clip; print(open_clip.list_models())'."
        )
        raise ModelNotFoundError(f"unknown model {arch!r}.{hint} {_HOW_TO_POINT_LOCALLY}")
    embed_dim = int(open_clip.get_model_config(arch)["embed_dim"])
    if not pretrained:
        tags = open_clip.list_pretrained_tags_by_model(arch)
        raise ModelNotFoundError(
            f"{arch} needs --pretrained: a tag ({', '.join(tags) or 'none known'}), a weights file, "
            f"or '{RANDOM}' for untrained weights."
        )
    if pretrained.lower() in {RANDOM, "none"}:
        identity = ModelIdentity(arch, RANDOM, "", embed_dim, arch, RANDOM)
        return ResolvedModel(identity, arch, "", "")
    weights = Path(pretrained).expanduser()
    if weights.suffix in WEIGHT_SUFFIXES or weights.exists():
        if not weights.is_file():
            raise ModelNotFoundError(f"weights file {weights} does not exist. {_HOW_TO_POINT_LOCALLY}")
        weights = weights.resolve()
        identity = ModelIdentity(arch, "file", file_sha256(weights), embed_dim, arch, str(weights))
        return ResolvedModel(identity, arch, str(weights), "")
    cfg = open_clip.get_pretrained_cfg(arch, pretrained)
    if not cfg:
        tags = open_clip.list_pretrained_tags_by_model(arch)
        raise ModelNotFoundError(
            f"{arch} has no pretrained tag {pretrained!r}; known tags: {', '.join(tags) or 'none'}. "
            + _HOW_TO_POINT_LOCALLY
        )
    checkpoint = _cached_or_download(cfg, f"{arch} / {pretrained}")
    overrides = tuple(
        (key, json.dumps(cfg[key]))
        for key in ("mean", "std", "interpolation", "resize_mode", "quick_gelu")
        if key in cfg
    )
    identity = ModelIdentity(arch, pretrained, "", embed_dim, arch, pretrained)
    return ResolvedModel(identity, arch, checkpoint, "", overrides)


def _resolve_hub_repo(repo: str) -> ResolvedModel:
    from open_clip.pretrained import download_pretrained_from_hf

    def fetch(name: str) -> str:
        return download_pretrained_from_hf(repo, filename=name)

    config_file = _hub_cached(repo, ("open_clip_config.json",)) or _download_or_fail(
        lambda: fetch("open_clip_config.json"), "huggingface.co", f"hf-hub:{repo}"
    )
    weights = _hub_cached(repo, ("open_clip_model.safetensors", "open_clip_pytorch_model.bin")) or _download_or_fail(
        lambda: fetch("open_clip_pytorch_model.bin"), "huggingface.co", f"hf-hub:{repo}"
    )
    config = json.loads(Path(config_file).read_text())
    identity = ModelIdentity(
        arch=f"hf-hub:{repo}",
        pretrained="hf-hub",
        weights_sha256="",
        embed_dim=int(config["model_cfg"]["embed_dim"]),
        spec=f"hf-hub:{repo}",
    )
    return ResolvedModel(identity, f"{LOCAL_DIR}{Path(config_file).parent}", weights, str(Path(config_file).parent))


def _hub_cached(repo: str, names: tuple[str, ...]) -> str:
    try:
        from huggingface_hub import try_to_load_from_cache
    except ImportError:
        return ""
    for name in names:
        hit = try_to_load_from_cache(repo, name)
        if isinstance(hit, str) and os.path.isfile(hit):
            return hit
    return ""


def _cached(cfg: dict) -> str:
    """The local file of a tag's weights (``cfg`` holds its ``hf_hub`` or ``url``), or ""."""
    hub = cfg.get("hf_hub", "")
    if hub:
        repo, filename = os.path.split(hub)
        names = (filename,) if filename else ("open_clip_model.safetensors", "open_clip_pytorch_model.bin")
        alt = tuple(n[:-4] + ".safetensors" for n in names if n.endswith((".bin", ".pth")))
        return _hub_cached(repo, alt + names)
    candidate = Path("~/.cache/clip").expanduser() / os.path.basename(cfg.get("url", ""))
    return str(candidate) if candidate.is_file() else ""


def _host(cfg: dict) -> str:
    """Where a tag's weights download from."""
    return "huggingface.co" if cfg.get("hf_hub") else urlparse(cfg.get("url", "")).hostname or ""


def _cached_or_download(cfg: dict, label: str) -> str:
    """Local path of a tag's weights: from the cache, else downloaded if the network answers."""
    from open_clip.pretrained import download_pretrained

    return _cached(cfg) or _download_or_fail(lambda: download_pretrained(cfg), _host(cfg), label)


def _check_downloadable(host: str, label: str) -> None:
    """Raise WeightsUnavailableError when ``label``'s weights cannot be downloaded now."""
    if offline():
        raise WeightsUnavailableError(
            f"weights for {label} are not in the local cache and HF_HUB_OFFLINE is set. " + _HOW_TO_POINT_LOCALLY
        )
    if not reachable(host):
        raise WeightsUnavailableError(
            f"weights for {label} are not in the local cache and {host} cannot be reached "
            f"(checked for {_PROBE_SECONDS:.0f} s). Connect to the internet once to download them, or "
            + _HOW_TO_POINT_LOCALLY[0].lower()
            + _HOW_TO_POINT_LOCALLY[1:]
        )


def _download_or_fail(download, host: str, label: str) -> str:  # noqa: ANN001
    _check_downloadable(host, label)
    try:
        return str(download())
    except Exception as exc:  # open_clip/hub raise many kinds; the user needs one message
        raise WeightsUnavailableError(
            f"downloading weights for {label} failed: {exc}. {_HOW_TO_POINT_LOCALLY}"
        ) from exc


def reachable(host: str, port: int = 443, timeout: float = _PROBE_SECONDS) -> bool:
    """True if a TCP connection to ``host`` opens within ``timeout`` seconds (DNS included)."""
    if not host:
        return False
    result: list[bool] = []

    def probe() -> None:
        try:
            with socket.create_connection((host, port), timeout=timeout):
                result.append(True)
        except OSError:
            result.append(False)

    # getaddrinfo ignores socket timeouts; a daemon thread bounds the whole probe.
    thread = threading.Thread(target=probe, daemon=True)
    thread.start()
    thread.join(timeout)
    return bool(result and result[0])


def _hash_cache_path() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache")
    return Path(base) / "xmr" / "weights-sha256.json"


def file_sha256(path: Path) -> str:
    """sha256 of a weights file, cached by (path, size, mtime) so reopening stays fast."""
    path = Path(path).resolve()
    stat = path.stat()
    key = f"{path}|{stat.st_size}|{stat.st_mtime_ns}"
    cache_file = _hash_cache_path()
    try:
        cache = json.loads(cache_file.read_text())
    except (OSError, ValueError):
        cache = {}
    if key in cache:
        return str(cache[key])
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    cache = {k: v for k, v in cache.items() if not k.startswith(f"{path}|")}
    cache[key] = digest.hexdigest()
    try:
        atomic_write_bytes(cache_file, json.dumps(cache).encode())
    except OSError:
        pass  # the cache only saves time
    return cache[key]
