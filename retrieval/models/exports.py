"""ONNX exports on disk: reading an export folder, the export cache, and exports on the hub (no torch).

An export folder has Immich's layout::

    config.json                      open_clip model config (embed_dim, vision_cfg, text_cfg)
    textual/model.onnx               token ids (B, T) -> (B, D) unit vectors
    textual/tokenizer.json           read by the ``tokenizers`` library
    textual/tokenizer_config.json    Hugging Face tokenizer settings (pad token, ...)
    visual/model.onnx                pixels (B, 3, H, W) -> (B, D) unit vectors
    visual/preprocess_cfg.json       size, mean, std, interpolation, resize_mode, fill_color
    xmr_export.json                  (exports xmr made) the source model's identity, tokenizer
                                     settings, file hashes

Exports xmr made of an open_clip model carry that model's identity: their vectors are the
model's vectors, so a library built with torch is searched with onnxruntime and back.
Other exports (Immich's, or any folder in the layout) get an identity of their own, made
from the hashes of their two towers, so their vectors never mix with another model's.

The cache (``$XDG_CACHE_HOME/xmr/exports``) holds one folder per model, named by a hash
of the weights' sha256 and the preprocessing; an alias file per ``--model``/``--pretrained``
pair points at it and records how to tell it is still current (never stale: a changed
weights file gives another sha256).
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from dataclasses import dataclass, replace
from pathlib import Path

from index.atomic import atomic_write_bytes
from index.manifest import ModelIdentity
from retrieval.errors import ExportError, WeightsUnavailableError
from retrieval.models.preprocess import PreprocessConfig
from retrieval.models.specs import ModelSpec, file_sha256, offline, reachable
from retrieval.models.tokenizer import CLIP_BPE, HF, TokenizerConfig

FORMAT = "xmr-onnx-export"
# 1: first export layout (Immich's folders plus xmr_export.json).
FORMAT_VERSION = 1
META = "xmr_export.json"
TEXT_MODEL = "textual/model.onnx"
IMAGE_MODEL = "visual/model.onnx"
TOKENIZER = "textual/tokenizer.json"
TOKENIZER_CONFIG = "textual/tokenizer_config.json"
PREPROCESS = "visual/preprocess_cfg.json"
MODEL_CONFIG = "config.json"
HUB = "hf-hub:"
# What a hub export is downloaded with (Immich's repos also hold other runtimes' files).
HUB_FILES = (MODEL_CONFIG, META, TEXT_MODEL, TOKENIZER, TOKENIZER_CONFIG, IMAGE_MODEL, PREPROCESS)
FOREIGN = "onnx-export"  # the ``pretrained`` of a foreign export's identity


@dataclass(frozen=True)
class HubExport:
    """An ONNX export on the Hugging Face hub made from exactly one open_clip model's weights."""

    arch: str  # open_clip architecture, e.g. "ViT-B-32"
    pretrained: str  # open_clip pretrained tag the export was made from
    repo: str  # hub repository in the export layout
    embed_dim: int  # width of the embedding space


_HUB_EXPORTS: dict[tuple[str, str], HubExport] = {}


def add_hub_export(entry: HubExport) -> None:
    """Register a hub export of an open_clip model (used where torch is not installed)."""
    _HUB_EXPORTS[(entry.arch, entry.pretrained)] = entry


def get_hub_export(arch: str, pretrained: str) -> HubExport | None:
    """The registered hub export of ``arch``/``pretrained``, or None."""
    return _HUB_EXPORTS.get((arch, pretrained))


def list_hub_exports() -> list[HubExport]:
    """Every registered hub export."""
    return list(_HUB_EXPORTS.values())


# Immich's export of the default model (made with open_clip from the same weights file).
add_hub_export(HubExport("ViT-B-32", "laion2b_s34b_b79k", "immich-app/ViT-B-32__laion2b-s34b-b79k", 512))


@dataclass(frozen=True)
class ExportInfo:
    """What an export folder holds, read from its JSON files (no session is created)."""

    folder: Path  # root of the export
    identity: ModelIdentity  # whose vectors: the open_clip model it was made from, or the export itself
    tokenizer: TokenizerConfig  # how texts become token ids
    preprocess: PreprocessConfig  # how images become pixels
    text_trim: bool = False  # the text tower takes sequences cut after the last end-of-text token
    image_model: str = IMAGE_MODEL  # image tower file, relative to the folder
    image_precision: str = "fp32"  # "fp32", or "int8" for a quantized image tower
    made_by_xmr: bool = False  # the folder has xmr_export.json

    @property
    def text_path(self) -> Path:
        return self.folder / TEXT_MODEL

    @property
    def image_path(self) -> Path:
        return self.folder / self.image_model


def is_export_folder(path: Path) -> bool:
    """True when ``path`` is a folder in the export layout (config.json and a tower)."""
    path = Path(path)
    return (path / MODEL_CONFIG).is_file() and ((path / TEXT_MODEL).is_file() or (path / IMAGE_MODEL).is_file())


def read_export(folder: Path, named_as: str | None = "", *, verify: bool = True) -> ExportInfo:
    """Read the export in ``folder``.

    Args:
        folder: an export folder (see the module docstring).
        named_as: the ``--model`` value that names it, recorded as the identity's spec so a
            library reopens with the same value ("": the folder's path; None: an export xmr
            made keeps its source model's spec, as the export cache wants).
        verify: for exports xmr made, check the towers' sha256 against xmr_export.json
            (hashes are cached by size and mtime, so only the first read pays).

    Raises:
        ExportError: the folder is not a complete export, or its files were changed.
    """
    folder = Path(folder).expanduser().resolve()
    spec = str(folder) if named_as == "" else named_as
    if not is_export_folder(folder):
        raise ExportError(
            f"{folder} is not an ONNX export folder (it needs {MODEL_CONFIG}, {TEXT_MODEL} and {IMAGE_MODEL}). "
            "Make one with  xmr export-model MODEL --out DIR."
        )
    if (folder / META).is_file():
        return _read_own(folder, spec, verify)
    return _read_foreign(folder, spec or str(folder))


def _load_json(path: Path) -> dict:
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ExportError(f"{path} is unreadable ({exc}); export the model again.") from exc
    if not isinstance(raw, dict):
        raise ExportError(f"{path} is not a JSON object; export the model again.")
    return raw


def _read_own(folder: Path, spec: str | None, verify: bool) -> ExportInfo:
    meta = _load_json(folder / META)
    if meta.get("format") != FORMAT or not isinstance(meta.get("version"), int) or meta["version"] > FORMAT_VERSION:
        raise ExportError(f"{folder / META} is from a newer xmr (or not an xmr export); upgrade xmr or export again.")
    try:
        identity = ModelIdentity.from_dict(meta["model"])
        tokenizer = TokenizerConfig.from_dict(meta["tokenizer"])
        image_model = str(meta.get("image_model", IMAGE_MODEL))
        files = {str(k): str(v) for k, v in meta.get("files", {}).items()}
    except (KeyError, TypeError, ValueError) as exc:
        raise ExportError(f"{folder / META} is missing fields ({exc}); export the model again.") from exc
    if verify:
        for name in (TEXT_MODEL, image_model):
            path = folder / name
            if path.is_file() and files.get(name) and file_sha256(path) != files[name]:
                raise ExportError(
                    f"{path} changed since xmr exported it (sha256 differs from {META}); export the model again "
                    "rather than mixing its vectors with the model's."
                )
    if spec is not None:  # named by its folder or hub repo: reopened from there, still the same model
        identity = replace(identity, spec=spec, spec_pretrained="")
    return ExportInfo(
        folder=folder,
        identity=identity,
        tokenizer=tokenizer,
        preprocess=_preprocess(folder),
        text_trim=bool(meta.get("text_trim", False)),
        image_model=image_model,
        image_precision=str(meta.get("image_precision", "fp32")),
        made_by_xmr=True,
    )


def _read_foreign(folder: Path, spec: str) -> ExportInfo:
    config = _load_json(folder / MODEL_CONFIG)
    config = config.get("model_cfg", config)  # open_clip_config.json nests it
    try:
        embed_dim = int(config["embed_dim"])
        text_cfg = dict(config.get("text_cfg", {}))
    except (KeyError, TypeError, ValueError) as exc:
        raise ExportError(f"{folder / MODEL_CONFIG} has no embed_dim ({exc}); it is not an open_clip export.") from exc
    tokenizer = foreign_tokenizer_config(folder, text_cfg)
    digest = hashlib.sha256()
    for name in (TEXT_MODEL, IMAGE_MODEL):
        digest.update(file_sha256(folder / name).encode() if (folder / name).is_file() else b"-")
    name = spec[len(HUB) :] if spec.startswith(HUB) else folder.name
    identity = ModelIdentity(name, FOREIGN, digest.hexdigest(), embed_dim, spec, "")
    return ExportInfo(folder, identity, tokenizer, _preprocess(folder))


def foreign_tokenizer_config(folder: Path, text_cfg: dict) -> TokenizerConfig:
    """Tokenizer settings of an export xmr did not make, from open_clip's text config the way
    open_clip's ``get_tokenizer`` reads it (a Hugging Face tokenizer name means the ``hf`` family)."""
    kwargs = text_cfg.get("tokenizer_kwargs") or {}
    context = int(text_cfg.get("context_length", 77))
    if not text_cfg.get("hf_tokenizer_name"):
        return TokenizerConfig(CLIP_BPE, context, str(kwargs.get("clean", "lower")))
    hf = _load_json(folder / TOKENIZER_CONFIG) if (folder / TOKENIZER_CONFIG).is_file() else {}
    pad_token = hf.get("pad_token")
    pad_token = pad_token.get("content") if isinstance(pad_token, dict) else pad_token
    vocab = json.loads((folder / TOKENIZER).read_text(encoding="utf-8")).get("added_tokens", [])
    pad_id = next((int(t["id"]) for t in vocab if t.get("content") == pad_token), 0)
    return TokenizerConfig(
        HF,
        context,
        str(kwargs.get("clean", "whitespace")),
        pad_id=pad_id,
        padding_side=str(hf.get("padding_side", "right")),
        truncation_side=str(hf.get("truncation_side", "right")),
    )


def _preprocess(folder: Path) -> PreprocessConfig:
    path = folder / PREPROCESS
    try:
        return PreprocessConfig.from_dict(_load_json(path)) if path.is_file() else PreprocessConfig()
    except ValueError as exc:
        raise ExportError(f"{path}: {exc}; xmr reproduces open_clip's resize modes and interpolations only.") from exc


# ---- the export cache ------------------------------------------------------------------------


def exports_dir() -> Path:
    """Where xmr keeps the exports it made (``$XDG_CACHE_HOME/xmr/exports``)."""
    base = os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache")
    return Path(base) / "xmr" / "exports"


def export_key(arch: str, weights_sha256: str, settings: str = "") -> str:
    """The cache folder name of a model: its architecture and a hash of its weights and settings."""
    slug = re.sub(r"[^A-Za-z0-9._-]+", "_", arch.rsplit("/", 1)[-1])[:48] or "model"
    return f"{slug}-{hashlib.sha256(f'{weights_sha256}|{settings}'.encode()).hexdigest()[:32]}"


def _alias_path(spec: ModelSpec) -> Path:
    key = hashlib.sha256(json.dumps([spec.model.strip(), spec.pretrained.strip()]).encode()).hexdigest()[:32]
    return exports_dir() / "aliases" / f"{key}.json"


def source_versions() -> dict[str, str]:
    """Installed versions of the packages that make random weights (no import)."""
    from importlib import metadata  # 15 ms: only when an export is made or checked, never in a search

    found = {}
    for name in ("torch", "open_clip_torch"):
        try:
            found[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            found[name] = ""
    return found


def record_alias(
    spec: ModelSpec, key: str, checkpoint: str, weights_sha256: str, local: bool, named: tuple[str, str] | None = None
) -> None:
    """Remember that ``spec`` is exported in cache folder ``key`` (written atomically).

    ``checkpoint`` is the weights file ("" for random weights) and ``local`` whether it is the
    user's own file (which must still be there) rather than a tag's download. ``named`` is the
    (spec, pretrained) the identity of ``spec``'s vectors records: one export serves every
    spec with the same weights, and each must reopen from its own, not from the first one's.
    """
    body: dict[str, object] = {
        "spec": [spec.model.strip(), spec.pretrained.strip()],
        "named": list(named) if named is not None else None,
        "export": key,
        "weights_sha256": weights_sha256,
        "local": local,
    }
    if checkpoint:
        stat = os.stat(checkpoint)
        body["checkpoint"] = {
            "path": str(Path(checkpoint).resolve()),
            "size": stat.st_size,
            "mtime_ns": stat.st_mtime_ns,
        }
    if not checkpoint:  # random weights: as reproducible as the packages that drew them
        body["versions"] = source_versions()
    atomic_write_bytes(_alias_path(spec), (json.dumps(body, indent=2, sort_keys=True) + "\n").encode())


def cached_export(spec: ModelSpec) -> ExportInfo | None:
    """The cached export of ``spec`` when there is a current one, else None (never imports torch)."""
    path = _alias_path(spec)
    try:
        alias = json.loads(path.read_text())
        folder = exports_dir() / str(alias["export"])
    except (OSError, ValueError, KeyError, TypeError):
        return None
    if not _alias_current(alias) or not is_export_folder(folder) or not (folder / META).is_file():
        return None
    try:
        found = read_export(folder, named_as=None, verify=False)  # the cache is written by xmr only
    except ExportError:
        return None
    named = alias.get("named")
    if isinstance(named, list) and len(named) == 2 and all(isinstance(n, str) for n in named):
        found = replace(found, identity=replace(found.identity, spec=named[0], spec_pretrained=named[1]))
    return found


def _alias_current(alias: dict) -> bool:
    """False when the weights the export was made from changed (or may have) since."""
    checkpoint = alias.get("checkpoint")
    if isinstance(checkpoint, dict):
        path = Path(str(checkpoint.get("path", "")))
        if not path.is_file():
            # A tag's weights never change (the hub cache may be cleaned); a local file must be there.
            return not alias.get("local", True)
        stat = path.stat()
        if (stat.st_size, stat.st_mtime_ns) == (checkpoint.get("size"), checkpoint.get("mtime_ns")):
            return True
        return file_sha256(path) == alias.get("weights_sha256")
    versions = alias.get("versions")
    if isinstance(versions, dict):
        installed = source_versions()
        return not installed["torch"] or versions == installed
    return False


# ---- exports on the hub ----------------------------------------------------------------------


def is_hub_export(repo: str) -> bool:
    """True when hub repository ``repo`` is in the export layout (cached files first, then the hub)."""
    if _hub_cached(repo, TEXT_MODEL) or _hub_cached(repo, IMAGE_MODEL):
        return True
    if _hub_cached(repo, "open_clip_config.json") or offline() or not reachable("huggingface.co"):
        return False
    try:
        from huggingface_hub import list_repo_files

        return IMAGE_MODEL in list_repo_files(repo)
    except Exception:  # noqa: BLE001 (unknown repo, no network: not an export we can use)
        return False


def hub_export_folder(repo: str) -> Path:
    """The local folder of hub export ``repo``: the hub cache's copy, downloaded once if needed.

    Raises:
        MissingDependencyError: huggingface_hub is not installed.
        WeightsUnavailableError: the export is not cached and cannot be downloaded.
    """
    from index.deps import attempt_import

    hub = attempt_import("huggingface_hub", "huggingface_hub is needed for hub models: pip install huggingface_hub")
    if is_hub_export_cached(repo):
        return _snapshot_root(_hub_cached(repo, MODEL_CONFIG), MODEL_CONFIG)
    how = f"copy the export folder to this machine and pass --model /path/to/folder, or run once online to fetch hf-hub:{repo}"
    if offline():
        raise WeightsUnavailableError(
            f"the ONNX export hf-hub:{repo} is not in the local hub cache and HF_HUB_OFFLINE is set; {how}."
        )
    if not reachable("huggingface.co"):
        raise WeightsUnavailableError(
            f"the ONNX export hf-hub:{repo} is not cached and huggingface.co cannot be reached; {how}."
        )
    try:
        folder = hub.snapshot_download(repo, allow_patterns=list(HUB_FILES))
    except Exception as exc:  # noqa: BLE001 (the hub raises many kinds; the user needs one message)
        raise WeightsUnavailableError(f"downloading the ONNX export hf-hub:{repo} failed: {exc}; {how}.") from exc
    return Path(folder)


def is_hub_export_cached(repo: str) -> bool:
    """True when the hub cache holds every file of export ``repo`` that xmr needs."""
    return all(_hub_cached(repo, name) for name in (MODEL_CONFIG, TEXT_MODEL, TOKENIZER, IMAGE_MODEL))


def _hub_cached(repo: str, name: str) -> str:
    try:
        from huggingface_hub import try_to_load_from_cache
    except ImportError:
        return ""
    hit = try_to_load_from_cache(repo, name)
    return hit if isinstance(hit, str) and os.path.isfile(hit) else ""


def _snapshot_root(path: str, name: str) -> Path:
    root = Path(path)
    for _ in Path(name).parts:
        root = root.parent
    return root
