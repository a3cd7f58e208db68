"""A pretrained cross-attention reranker: BLIP's image-text matching (ITM) head.

``--reranker blip:Salesforce/blip-itm-base-coco`` rescores the dual encoder's candidates
with transformers' :class:`BlipForImageTextRetrieval` (ViT image encoder, BERT text encoder
cross-attending to the image tokens, a two-way match/no-match head), so users get a
trained cross-attention reranker without training one. The match probability is
``softmax(itm_logits)[:, 1]``; it stands alone: the dual cosines the search path hands in
are ignored, because BLIP was trained without them.

The name after ``blip:`` is a hub repo id (downloaded once into the Hugging Face cache) or
a local folder written with ``save_pretrained`` (model and processor), for machines
without network access. transformers is optional: ``pip install 'xmr[blip]'``.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from PIL import Image

from index.deps import attempt_import
from retrieval.errors import BlipWeightsNotFoundError, ImageDecodeError, RerankerError
from retrieval.images.decode import decode_file
from retrieval.rerank.base import ImageRef

if TYPE_CHECKING:
    import torch

__all__ = [
    "BLIP_HINT",
    "DEFAULT_BLIP",
    "BlipReranker",
    "BlipWeightsNotFoundError",
    "load_blip_reranker",
]

DEFAULT_BLIP = "Salesforce/blip-itm-base-coco"  # ViT-B/16 + BERT-base ITM, fine-tuned on COCO
BLIP_HINT = "the blip reranker needs transformers; install it with  pip install 'xmr[blip]'"
BATCH_PAIRS = 32  # (text, image) pairs per forward pass
# Weights the ITM score depends on; a checkpoint missing any of them (a captioning or VQA
# BLIP) would load with random layers and give meaningless probabilities.
_ITM_PARTS = ("vision_model.", "text_encoder.", "itm_head.")


class BlipReranker:
    """Rescores (text, image) pairs with a BLIP ITM model; implements ``Reranker``.

    Build it with :func:`load_blip_reranker`. Probabilities are BLIP's alone: the ``dual``
    cosines are accepted for the protocol and ignored. A candidate whose file cannot be read
    or decoded gets probability 0.0 (it sinks to the bottom) instead of failing the search.
    """

    # model, processor: transformers' BlipForImageTextRetrieval and BlipProcessor (an optional
    # dependency, not imported here); their parts are attributes the type checker cannot see.
    def __init__(self, name: str, model: Any, processor: Any, device: str, batch_size: int = BATCH_PAIRS) -> None:
        """Wrap a loaded ``BlipForImageTextRetrieval`` and its ``BlipProcessor`` on ``device``."""
        if batch_size < 1:
            raise RerankerError(f"batch_size must be at least 1, not {batch_size}")
        self.name = name  # what --reranker named, e.g. "blip:Salesforce/blip-itm-base-coco"
        self.model = model
        self.processor = processor
        self.device = device
        self.batch_size = batch_size
        text_cfg = model.config.text_config
        self._max_tokens = int(min(processor.tokenizer.model_max_length, text_cfg.max_position_embeddings))

    def rerank_images(self, text: str, images: Sequence[ImageRef], dual: np.ndarray) -> np.ndarray:
        """Match probability ``(n,)`` float32 of ``text`` with each image (``dual`` is ignored).

        Images come from ``ImageRef.image`` or are decoded from ``ImageRef.path`` (EXIF
        orientation applied); unreadable ones get 0.0.

        Raises:
            RerankerError: ``dual`` does not have one score per image, or an ``ImageRef``
                has neither ``image`` nor ``path``.
        """
        _check_dual(dual, len(images))
        out = np.zeros(len(images), dtype=np.float32)
        if not images:
            return out
        ids, mask = self._tokenize([text])  # (1, T)
        for start in range(0, len(images), self.batch_size):
            chunk = images[start : start + self.batch_size]
            decoded = [_load_image(ref) for ref in chunk]
            keep = [i for i, image in enumerate(decoded) if image is not None]
            if not keep:
                continue
            with self._inference():
                embeds = self._image_embeds([image for image in decoded if image is not None])  # (b, N, D)
                b = embeds.shape[0]
                probs = self._itm(ids.expand(b, -1), mask.expand(b, -1), embeds)
            out[[start + i for i in keep]] = probs
        return out

    def rerank_texts(self, image: ImageRef, texts: Sequence[str], dual: np.ndarray) -> np.ndarray:
        """Match probability ``(n,)`` float32 of ``image`` with each text (``dual`` is ignored).

        The image is encoded once and shared by every text. An unreadable image file gives
        all zeros.

        Raises:
            RerankerError: ``dual`` does not have one score per text, or ``image`` has
                neither ``image`` nor ``path``.
        """
        _check_dual(dual, len(texts))
        out = np.zeros(len(texts), dtype=np.float32)
        decoded = _load_image(image)
        if not texts or decoded is None:
            return out
        with self._inference():
            embeds = self._image_embeds([decoded])  # (1, N, D)
            for start in range(0, len(texts), self.batch_size):
                ids, mask = self._tokenize(list(texts[start : start + self.batch_size]))  # (b, T)
                b = ids.shape[0]
                out[start : start + b] = self._itm(ids, mask, embeds.expand(b, -1, -1))
        return out

    def _tokenize(self, texts: list[str]) -> tuple[torch.Tensor, torch.Tensor]:
        batch = self.processor.tokenizer(
            texts, padding=True, truncation=True, max_length=self._max_tokens, return_tensors="pt"
        )
        return batch["input_ids"].to(self.device), batch["attention_mask"].to(self.device)

    def _image_embeds(self, images: list[Image.Image]) -> torch.Tensor:
        pixels = self.processor.image_processor(images=images, return_tensors="pt")["pixel_values"]
        return self.model.vision_model(pixel_values=pixels.to(self.device)).last_hidden_state

    def _itm(self, ids: torch.Tensor, mask: torch.Tensor, image_embeds: torch.Tensor) -> np.ndarray:
        """``BlipForImageTextRetrieval.forward(use_itm_head=True)`` with the image encoded once.

        Calling the parts lets ``rerank_texts`` encode its one image once instead of once
        per text; a test checks the result equals the library's own forward.
        """
        import torch

        image_mask = torch.ones(image_embeds.shape[:-1], dtype=torch.long, device=image_embeds.device)  # (b, N)
        hidden = self.model.text_encoder(
            input_ids=ids, attention_mask=mask, encoder_hidden_states=image_embeds, encoder_attention_mask=image_mask
        ).last_hidden_state  # (b, T, D)
        logits = self.model.itm_head(hidden[:, 0, :])  # (b, 2)
        return logits.float().softmax(dim=-1)[:, 1].cpu().numpy()

    @contextlib.contextmanager
    def _inference(self) -> Iterator[None]:
        import torch

        with torch.inference_mode():
            if self.device.startswith("cuda"):
                dtype = torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
                with torch.autocast(device_type="cuda", dtype=dtype):
                    yield
            else:
                yield


def load_blip_reranker(name: str, device: str = "auto", batch_size: int = BATCH_PAIRS) -> BlipReranker:
    """Load a BLIP ITM model and its processor as a reranker.

    Args:
        name: what follows ``blip:``: a hub repo id (``Salesforce/blip-itm-base-coco``,
            fetched into the Hugging Face cache on first use) or a local folder holding
            ``save_pretrained`` output of both the model and the processor.
        device: ``auto`` (cuda, then mps, then cpu), ``cpu``, ``cuda``, ``cuda:N`` or ``mps``.
        batch_size: (text, image) pairs per forward pass.

    Returns:
        A :class:`BlipReranker` in eval mode on the chosen device.

    Raises:
        MissingDependencyError: transformers is not installed.
        BlipWeightsNotFoundError: the local folder does not exist, or the repo is not cached
            and the hub cannot be reached (``HF_HUB_OFFLINE=1`` or no network).
        RerankerError: the folder or repo is not a BLIP model, lacks the ITM weights, or
            cannot be loaded.
    """
    transformers = attempt_import("transformers", BLIP_HINT)
    from retrieval.models.encoder import pick_device

    device = pick_device(device)
    source = _resolve_source(name)
    try:
        config = transformers.AutoConfig.from_pretrained(source)
    except (OSError, ValueError) as exc:
        raise _not_found(name, source, exc) from exc
    if getattr(config, "model_type", None) != "blip":
        raise RerankerError(
            f"blip:{name} is a {getattr(config, 'model_type', 'unknown')!r} model, not BLIP; "
            f"use a BLIP image-text matching checkpoint such as blip:{DEFAULT_BLIP}"
        )
    try:
        model, info = transformers.BlipForImageTextRetrieval.from_pretrained(source, output_loading_info=True)
        processor = transformers.BlipProcessor.from_pretrained(source)
    except (OSError, ValueError) as exc:
        raise _not_found(name, source, exc) from exc
    missing = sorted(k for k in info.get("missing_keys", ()) if k.startswith(_ITM_PARTS))
    if missing:
        raise RerankerError(
            f"blip:{name} has no trained image-text matching weights ({len(missing)} missing, e.g. "
            f"{missing[0]}); it is probably a captioning or VQA checkpoint. Use an ITM checkpoint "
            f"such as blip:{DEFAULT_BLIP}"
        )
    model.eval().to(device)
    return BlipReranker(f"blip:{name}", model, processor, device, batch_size)


def _resolve_source(name: str) -> str:
    """A local folder's path, or ``name`` unchanged as a hub repo id.

    Anything that exists on disk, or looks like a path rather than ``owner/repo``, is a
    folder: a missing folder must say so instead of asking the hub for a repo of that name.
    """
    if not name.strip():
        raise RerankerError(f"blip: needs a model, e.g. --reranker blip:{DEFAULT_BLIP} or blip:/path/to/folder")
    path = Path(name).expanduser()
    looks_like_path = name.startswith((".", "~", os.sep)) or name.count("/") > 1 or "\\" in name
    if not path.exists():
        if looks_like_path:
            raise BlipWeightsNotFoundError(
                f"no BLIP model folder at {path}; pass a folder written with save_pretrained "
                f"(model and processor) or a hub repo id such as blip:{DEFAULT_BLIP}"
            )
        return name
    if not (path / "config.json").is_file():
        raise RerankerError(
            f"{path} is not a transformers model folder (no config.json); save one with "
            "BlipForImageTextRetrieval.save_pretrained(folder) and BlipProcessor.save_pretrained(folder)"
        )
    return str(path)


def _not_found(name: str, source: str, exc: Exception) -> RerankerError:
    """The typed error for a failed load, naming how to get the weights."""
    reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    if Path(source).exists():
        return RerankerError(f"cannot load the BLIP model in {source}: {reason}")
    offline = os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in {"1", "true", "yes", "on"}
    why = "HF_HUB_OFFLINE is set" if offline else "the hub could not be reached or has no such repo"
    return BlipWeightsNotFoundError(
        f"the BLIP weights {name!r} are not in the Hugging Face cache and cannot be downloaded "
        f"({why}: {reason}). On a connected machine run  hf download {name}  (then copy the "
        f"cache, ~/.cache/huggingface), or pass a local folder: --reranker blip:/path/to/folder "
        f"(hf download {name} --local-dir /path/to/folder)"
    )


def _load_image(ref: ImageRef) -> Image.Image | None:
    """The RGB image of ``ref``, or None when its file cannot be read or decoded."""
    if ref.image is not None:
        return ref.image.convert("RGB") if ref.image.mode != "RGB" else ref.image
    if ref.path is None:
        raise RerankerError(f"the blip reranker needs an image or a file path, got {ref!r}")
    try:
        return decode_file(ref.path).image
    except (ImageDecodeError, OSError):
        return None


def _check_dual(dual: np.ndarray, n: int) -> None:
    if len(dual) != n:
        raise RerankerError(f"got {len(dual)} dual scores for {n} candidates; pass one per candidate")
