"""Tiny open_clip architectures built offline, saved as real ``local-dir`` model folders."""

from __future__ import annotations

import json
from pathlib import Path

TINY_CFG = {
    "embed_dim": 32,
    "vision_cfg": {"image_size": 32, "layers": 1, "width": 32, "head_width": 16, "patch_size": 8},
    "text_cfg": {"context_length": 16, "vocab_size": 49408, "width": 32, "heads": 2, "layers": 1},
}


def make_tiny_model(folder: Path, seed: int = 0, embed_dim: int = 32, text: dict | None = None) -> Path:
    """Write ``open_clip_config.json`` and random (seeded) weights into ``folder``; ``text``
    overrides keys of the text config (vocab_size, hf_tokenizer_name, ...)."""
    import open_clip
    import torch
    from safetensors.torch import save_file

    cfg = json.loads(json.dumps(TINY_CFG))
    cfg["embed_dim"] = embed_dim
    cfg["text_cfg"].update(text or {})
    folder.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(seed)
    model = open_clip.CLIP(**cfg)
    state = {k: v.contiguous() for k, v in model.state_dict().items()}
    save_file(state, str(folder / "open_clip_model.safetensors"))
    config = {
        "model_name": f"tiny-{seed}",
        "model_cfg": cfg,
        "preprocess_cfg": {"mean": [0.5, 0.5, 0.5], "std": [0.5, 0.5, 0.5]},
    }
    (folder / "open_clip_config.json").write_text(json.dumps(config))
    return folder
