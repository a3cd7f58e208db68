"""Make ONNX exports of open_clip models: both towers, the tokenizer and the preprocessing (needs torch).

:func:`export_model` writes one folder in the layout :mod:`retrieval.models.exports` reads,
atomically (a temporary folder renamed into place), and only after checking it: the ONNX
towers must give the torch model's vectors (cosine >= 0.9999) and the tokenizer its ids.
:func:`ensure_export` keeps one such folder per model in the export cache.

The text tower of a standard CLIP (causal attention, pooled at the end-of-text token) is
exported with a dynamic sequence length: tokens after the last end-of-text token cannot
change its output, so short queries run on short sequences.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import shutil
import warnings
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from index.atomic import remove_stale_temps, temp_dir
from index.deps import attempt_import, require_torch
from retrieval.errors import ExportError
from retrieval.models.encoder import ClipEncoder, load_encoder
from retrieval.models.exports import (
    FORMAT,
    FORMAT_VERSION,
    IMAGE_MODEL,
    META,
    MODEL_CONFIG,
    PREPROCESS,
    TEXT_MODEL,
    TOKENIZER,
    TOKENIZER_CONFIG,
    ExportInfo,
    cached_export,
    export_key,
    exports_dir,
    is_export_folder,
    read_export,
    record_alias,
)
from retrieval.models.onnx_encoder import OnnxEncoder
from retrieval.models.preprocess import PreprocessConfig
from retrieval.models.specs import ModelSpec, file_sha256, resolve
from retrieval.models.tokenizer import (
    CLIP_BPE,
    EOT,
    HF,
    SOT,
    TextTokenizer,
    TokenizerConfig,
    clip_bpe_tokenizer_json,
    read_bpe_merges,
)

if TYPE_CHECKING:
    import torch

log = logging.getLogger(__name__)

OPSET = 17  # LayerNormalization is one op from 17 on; onnxruntime >= 1.14 runs it
MIN_COSINE = 0.9999  # an export whose vectors differ more from torch's is not written
PROBE_TEXTS = (
    "a photo of a dog",
    "",
    "Ünïcödé &amp; <b>HTML</b> 😀 日本語",
    "two cats on a red sofa, seen from above " * 12,
    "<start_of_text> x <end_of_text>",
)
_CLEAN_MODES = {"_clean_lower": "lower", "_clean_whitespace": "whitespace", "_clean_canonicalize": "canonicalize"}


def export_model(
    encoder: ClipEncoder, out: Path, *, opset: int = OPSET, model_config: dict | None = None
) -> ExportInfo:
    """Write ``encoder``'s model to the new folder ``out`` as an ONNX export, checked against torch.

    Args:
        encoder: an open_clip encoder on the CPU (see :func:`retrieval.models.encoder.load_encoder`).
        out: the folder to create; it must not exist, or be empty.
        opset: ONNX opset of both towers.
        model_config: open_clip's model config for config.json (default: the registry's or the
            model folder's).

    Returns:
        The export, read back.

    Raises:
        ExportError: ``out`` is not empty, the model or tokenizer has no faithful ONNX form, or
            the exported towers disagree with torch.
        MissingDependencyError: onnx is not installed.
    """
    attempt_import("onnx", "exporting needs onnx: pip install 'xmr[torch]'")
    if encoder.device != "cpu":
        raise ExportError(f"export from an encoder on the CPU (this one is on {encoder.device}).")
    out = Path(out).expanduser().resolve()
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise ExportError(f"{out} already exists and is not empty; pass a new folder to --out.")
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = temp_dir(out)  # named for this process: a later export removes it if the process was killed
    try:
        _write_export(encoder, tmp, opset, model_config)
        check_export(encoder, read_export(tmp, named_as=None, verify=False))
        os.chmod(tmp, 0o777 & ~_umask())
        if out.exists():
            out.rmdir()  # empty (checked above); a racing writer's folder stays and ours is dropped
        os.rename(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return read_export(out, named_as=None, verify=False)


def export_spec(spec: ModelSpec, out: Path) -> ExportInfo:
    """Export the open_clip model ``spec`` names into the new folder ``out`` (see :func:`export_model`).

    Raises:
        MissingDependencyError: torch, open_clip or onnx is not installed.
        ModelNotFoundError, WeightsUnavailableError, ExportError: as the loaders and :func:`export_model`.
    """
    require_torch("exporting a model")
    resolved = resolve(spec)
    return export_model(load_encoder(resolved, device="cpu"), out, model_config=_folder_config(resolved.model_cfg_dir))


def ensure_export(spec: ModelSpec) -> ExportInfo:
    """The cached export of ``spec``, made once (minutes for large models) when there is none.

    Raises:
        ModelNotFoundError, WeightsUnavailableError: ``spec`` cannot be loaded.
        ExportError: the model has no faithful ONNX form.
    """
    found = cached_export(spec)
    if found is not None:
        return found
    resolved = resolve(spec)
    identity = resolved.identity
    weights = identity.weights_sha256 or (file_sha256(Path(resolved.checkpoint)) if resolved.checkpoint else "")
    encoder = None
    if not weights:  # random weights: hash what they are
        encoder = load_encoder(resolved, device="cpu")
        weights = state_sha256(encoder.model)
    config = Path(resolved.model_cfg_dir) / "open_clip_config.json" if resolved.model_cfg_dir else None
    settings = [identity.arch, file_sha256(config) if config and config.is_file() else "", list(resolved.preprocess)]
    key = export_key(identity.arch, weights, json.dumps(settings))
    folder = exports_dir() / key
    if not is_export_folder(folder):
        remove_stale_temps(exports_dir(), folders=True)  # exports and aliases of killed runs
        remove_stale_temps(exports_dir() / "aliases")
        log.info("exporting %s to ONNX once (cached in %s)", identity.label(), folder)
        try:
            model_config = _folder_config(resolved.model_cfg_dir)
            export_model(encoder or load_encoder(resolved, device="cpu"), folder, model_config=model_config)
        except (ExportError, OSError):
            if not is_export_folder(folder):  # not another process finishing first
                raise
    local = identity.pretrained in ("file", "local-dir")
    named = (identity.spec, identity.spec_pretrained)
    record_alias(spec, key, resolved.checkpoint, weights, local, named)
    found = read_export(folder, named_as=None, verify=False)
    # The folder may have been exported from another spec with the same weights (a copy of the
    # model folder, a moved one): the vectors are the same, the name to reopen them is ours.
    return replace(found, identity=replace(found.identity, spec=named[0], spec_pretrained=named[1]))


def _folder_config(folder: str) -> dict | None:
    """The ``model_cfg`` of an open_clip model folder's open_clip_config.json, or None."""
    try:
        return dict(json.loads((Path(folder) / "open_clip_config.json").read_text())["model_cfg"]) if folder else None
    except (OSError, ValueError, KeyError, TypeError):
        return None


def state_sha256(model: torch.nn.Module) -> str:
    """sha256 over a model's parameters and buffers (names, shapes and bytes)."""
    digest = hashlib.sha256()
    for name, tensor in sorted(model.state_dict().items()):
        array = tensor.detach().cpu().contiguous().numpy()
        digest.update(f"{name}|{array.dtype}|{array.shape}|".encode())
        digest.update(array.tobytes())
    return digest.hexdigest()


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _write_export(encoder: ClipEncoder, folder: Path, opset: int, model_config: dict | None) -> None:
    model = encoder.model.float().eval().cpu()
    preprocess = PreprocessConfig.from_dict(dict(getattr(model.visual, "preprocess_cfg", {}) or {}))
    (folder / "textual").mkdir()
    (folder / "visual").mkdir()
    tokenizer = write_tokenizer(encoder.tokenizer, folder / "textual")
    (folder / PREPROCESS).write_text(json.dumps(preprocess.to_dict(), indent=2) + "\n")
    config = dict(model_config or _model_config(encoder), embed_dim=encoder.dim)
    # Readers without xmr_export.json take the context length from here (open_clip's default: 77).
    config["text_cfg"] = {**config.get("text_cfg", {}), "context_length": tokenizer.context_length}
    (folder / MODEL_CONFIG).write_text(json.dumps(config, indent=2) + "\n")
    with _export_mode():
        trim = _export_text(model, folder / TEXT_MODEL, opset, tokenizer.context_length)
        _export_image(model, folder / IMAGE_MODEL, opset, preprocess.size)
    files = {name: file_sha256(folder / name) for name in (TEXT_MODEL, IMAGE_MODEL, TOKENIZER)}
    meta = {
        "format": FORMAT,
        "version": FORMAT_VERSION,
        "model": encoder.identity.to_dict(),
        "tokenizer": tokenizer.to_dict(),
        "text_trim": trim,
        "image_model": IMAGE_MODEL,
        "image_precision": "fp32",
        "opset": opset,
        "files": files,
        "made_with": _versions(),
    }
    (folder / META).write_text(json.dumps(meta, indent=2, sort_keys=True) + "\n")


def _model_config(encoder: ClipEncoder) -> dict:
    """open_clip's model config of the encoder (Immich keeps it as config.json): the registry's,
    else its model folder's."""
    import open_clip

    config = open_clip.get_model_config(encoder.identity.arch)
    spec = encoder.identity.spec
    folder = spec[len("local-dir:") :] if spec.startswith("local-dir:") else spec
    return dict(config) if config else (_folder_config(folder) or {})


def _versions() -> dict[str, str]:
    from importlib import metadata

    found = {}
    for name in ("xmr", "torch", "open_clip_torch", "onnx", "onnxruntime"):
        try:
            found[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            found[name] = ""
    return found


@contextlib.contextmanager
def _export_mode() -> Iterator[None]:
    import torch

    # nn.MultiheadAttention's fused inference kernel has no ONNX form: trace the plain path.
    fastpath = torch.backends.mha.get_fastpath_enabled()
    torch.backends.mha.set_fastpath_enabled(False)
    try:
        with torch.no_grad(), warnings.catch_warnings():
            warnings.simplefilter("ignore")  # tracer warnings about Python ints in shapes
            yield
    finally:
        torch.backends.mha.set_fastpath_enabled(fastpath)


def _trimmable(model: Any) -> bool:
    """True for open_clip's own CLIP text tower: causal attention, pooled at the end-of-text token,
    and attention layers :func:`_plain_attention` can stand in for."""
    import open_clip
    import torch

    if not (
        isinstance(model, open_clip.CLIP)
        and getattr(model, "attn_mask", None) is not None
        and getattr(model, "text_pool_type", "") == "argmax"
    ):
        return False
    blocks = list(getattr(model.transformer, "resblocks", []))
    return bool(blocks) and all(
        isinstance(getattr(block, "attn", None), torch.nn.MultiheadAttention)
        and block.attn.batch_first
        and block.attn.in_proj_weight is not None
        and block.attn.bias_k is None
        and not block.attn.add_zero_attn
        for block in blocks
    )


@contextlib.contextmanager
def _plain_attention(model: Any) -> Iterator[None]:
    """Swap the text tower's ``nn.MultiheadAttention`` layers for the same math written with
    shapes read from the input: the traced MultiheadAttention bakes the example's sequence
    length into its reshapes. The weights are shared, not copied; the layers come back after."""
    import torch
    import torch.nn.functional as F

    class PlainAttention(torch.nn.Module):
        def __init__(self, attention: torch.nn.MultiheadAttention) -> None:
            super().__init__()
            self.attention = attention

        def forward(
            self,
            q: torch.Tensor,
            k: torch.Tensor,
            v: torch.Tensor,
            need_weights: bool = False,
            attn_mask: torch.Tensor | None = None,
        ) -> tuple[torch.Tensor, None]:
            mha = self.attention
            heads, width = mha.num_heads, mha.embed_dim
            qkv = F.linear(q, mha.in_proj_weight, mha.in_proj_bias)  # (B, T, 3W)
            qkv = qkv.reshape(q.shape[0], q.shape[1], 3, heads, width // heads).permute(
                2, 0, 3, 1, 4
            )  # (3, B, H, T, d)
            out = F.scaled_dot_product_attention(qkv[0], qkv[1], qkv[2], attn_mask=attn_mask)  # (B, H, T, d)
            out = out.transpose(1, 2).reshape(q.shape[0], q.shape[1], width)  # (B, T, W)
            return mha.out_proj(out), None

    blocks = list(model.transformer.resblocks)
    originals = [block.attn for block in blocks]
    try:
        for block, attention in zip(blocks, originals):
            block.attn = PlainAttention(attention)
        yield
    finally:
        for block, attention in zip(blocks, originals):
            block.attn = attention


def _export_text(model: torch.nn.Module, path: Path, opset: int, context: int) -> bool:
    """Export the text tower; True when its sequence length is dynamic (see the module docstring)."""
    import torch

    example = torch.zeros((2, context), dtype=torch.int32)  # (B, T)
    example[:, :3] = torch.tensor([1, 2, 3])
    if not _trimmable(model):
        _export(_tower(model, "text"), example, "text", {0: "batch"}, path, opset)
        return False
    with _plain_attention(model):
        _export(_trimmed_text(model), example, "text", {0: "batch", 1: "sequence"}, path, opset)
    return True


def _export_image(model: torch.nn.Module, path: Path, opset: int, size: tuple[int, int]) -> None:
    import torch

    example = torch.zeros((2, 3, *size), dtype=torch.float32)  # (B, 3, H, W)
    _export(_tower(model, "image"), example, "image", {0: "batch"}, path, opset)


def _export(tower: torch.nn.Module, example: torch.Tensor, name: str, axes: dict, path: Path, opset: int) -> None:
    import onnx
    import torch

    try:
        torch.onnx.export(
            tower,
            (example,),
            str(path),
            input_names=[name],
            output_names=["embedding"],
            dynamic_axes={name: axes, "embedding": {0: "batch"}},
            opset_version=opset,
            dynamo=False,
        )
        onnx.checker.check_model(str(path))
    except Exception as exc:  # noqa: BLE001 (the exporter fails in many ways on unusual layers)
        raise ExportError(f"the {name} tower has no ONNX form here ({exc.__class__.__name__}: {exc}).") from exc


def _tower(model: Any, kind: str) -> torch.nn.Module:
    """One tower of an open_clip model as a module returning unit vectors ``(B, D)``."""
    import torch

    class Tower(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.model = model

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            if kind == "text":
                return self.model.encode_text(x.long(), normalize=True)
            return self.model.encode_image(x, normalize=True)

    return Tower()


def _trimmed_text(model: Any) -> torch.nn.Module:
    """open_clip ``CLIP.encode_text`` for sequences of any length up to the context length."""
    import torch
    import torch.nn.functional as F
    from open_clip.transformer import text_global_pool

    class TrimmedText(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.model = model

        def forward(self, text: torch.Tensor) -> torch.Tensor:
            clip = self.model
            tokens = text.long()  # (B, T)
            length = tokens.shape[1]
            x = clip.token_embedding(tokens) + clip.positional_embedding[:length]  # (B, T, W)
            x = clip.transformer(x, attn_mask=clip.attn_mask[:length, :length])
            x = clip.ln_final(x)
            x = text_global_pool(x, tokens, clip.text_pool_type, eos_token_id=getattr(clip, "text_eos_id", None))
            projection = clip.text_projection
            x = projection(x) if isinstance(projection, torch.nn.Linear) else x @ projection  # (B, D)
            return F.normalize(x, dim=-1)

    return TrimmedText()


# ---- the tokenizer ---------------------------------------------------------------------------


def write_tokenizer(tokenizer: object, folder: Path) -> TokenizerConfig:
    """Write open_clip ``tokenizer`` into ``folder`` as tokenizer.json (+ tokenizer_config.json).

    Raises:
        ExportError: the tokenizer has no torch-free form with the same ids.
    """
    from open_clip.tokenizer import HFTokenizer, SimpleTokenizer, default_bpe

    context = int(getattr(tokenizer, "context_length", 0) or 77)
    clean = _CLEAN_MODES.get(getattr(getattr(tokenizer, "clean_fn", None), "__name__", ""), "")
    if isinstance(tokenizer, SimpleTokenizer) and clean:
        if tokenizer.reduction_fn is not None or len(tokenizer.all_special_ids) != 2:
            raise ExportError("open_clip tokenizers with token reduction or extra special tokens are not exported.")
        config = TokenizerConfig(CLIP_BPE, context, clean, pad_id=0)
        (folder / "tokenizer.json").write_text(clip_bpe_tokenizer_json(read_bpe_merges(Path(default_bpe())), context))
        settings = {
            "tokenizer_class": "PreTrainedTokenizerFast",
            "bos_token": SOT,
            "eos_token": EOT,
            "pad_token": "!",  # open_clip pads with id 0, which is "!"
            "model_max_length": context,
        }
        (folder / "tokenizer_config.json").write_text(json.dumps(settings, indent=2) + "\n")
    elif isinstance(tokenizer, HFTokenizer) and clean and getattr(tokenizer.tokenizer, "is_fast", False):
        if tokenizer.tokenizer_mode:
            raise ExportError(f"open_clip's {tokenizer.tokenizer_mode!r} tokenizer mode is not exported.")
        hf = tokenizer.tokenizer
        config = TokenizerConfig(
            HF,
            context,
            clean,
            pad_id=int(hf.pad_token_id or 0),
            padding_side=str(hf.padding_side),
            truncation_side=str(hf.truncation_side),
            strip_sep_id=int(hf.sep_token_id) if tokenizer.strip_sep_token and hf.sep_token_id is not None else -1,
        )
        hf.save_pretrained(str(folder))
    else:
        raise ExportError(f"open_clip's {type(tokenizer).__name__} has no torch-free form in xmr.")
    check_tokenizer(tokenizer, TextTokenizer.from_file(folder / "tokenizer.json", config))
    if not (folder / "tokenizer_config.json").is_file():
        raise ExportError(f"{folder / TOKENIZER_CONFIG} was not written.")
    return config


def check_tokenizer(reference: object, ours: TextTokenizer, texts: tuple[str, ...] = PROBE_TEXTS) -> None:
    """Raise ExportError unless ``ours`` gives ``reference``'s (open_clip's) ids for ``texts``."""
    theirs = reference(list(texts)).numpy()  # type: ignore[operator]
    mine = ours(list(texts))
    if theirs.shape != mine.shape or not np.array_equal(theirs, mine):
        raise ExportError("the torch-free tokenizer gives other token ids than open_clip's; the model is not exported.")


# ---- the check -------------------------------------------------------------------------------


def check_export(encoder: ClipEncoder, info: ExportInfo) -> None:
    """Raise ExportError unless the export's vectors match ``encoder``'s (cosine >= MIN_COSINE)."""
    import torch
    from PIL import Image

    onnx = OnnxEncoder(info, device="cpu")
    texts = list(PROBE_TEXTS)
    theirs = encoder.encode_texts(texts)
    # Together (one chunk, as long as the longest) and one by one (each cut to its own length).
    alone = np.concatenate([onnx.encode_texts([text]) for text in texts])
    text_cosine = float(min(np.min(np.sum(onnx.encode_texts(texts) * theirs, 1)), np.min(np.sum(alone * theirs, 1))))
    rng = np.random.default_rng(0)
    images = [Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8)) for h, w in ((240, 320), (97, 61))]
    theirs = encoder.encode_images(torch.stack([encoder.preprocess(image) for image in images]))
    pixels = onnx.stack([onnx.preprocess(image) for image in images])
    image_cosine = float(np.min(np.sum(onnx.encode_images(pixels) * theirs, axis=1)))
    if min(text_cosine, image_cosine) < MIN_COSINE:
        raise ExportError(
            f"the ONNX towers disagree with torch (cosine text {text_cosine:.6f}, image {image_cosine:.6f}, "
            f"need {MIN_COSINE}); use --runtime torch for this model."
        )
