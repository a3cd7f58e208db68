"""open_clip's registries read from its files: the same answers as open_clip, and refusals without torch."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from tests.helpers.paths import REPO


def test_the_files_say_what_open_clip_says() -> None:
    import open_clip

    from retrieval.models import registry

    shipped = registry.architectures()  # open_clip's files; configs added at run time are open_clip's own
    assert "ViT-B-32" in shipped and len(shipped) > 100 and shipped <= frozenset(open_clip.list_models())
    assert registry.architecture_config("ViT-B-32")["embed_dim"] == open_clip.get_model_config("ViT-B-32")["embed_dim"]
    read = 0
    for arch in open_clip.list_models():
        for tag in open_clip.list_pretrained_tags_by_model(arch):
            sources = registry.pretrained_sources(arch, tag)
            if sources is None:  # an entry made by code: open_clip is asked instead
                continue
            cfg = open_clip.get_pretrained_cfg(arch, tag)
            assert sources == {"url": cfg.get("url", ""), "hf_hub": cfg.get("hf_hub", "")}, (arch, tag)
            read += 1
    assert read > 100 and registry.pretrained_sources("ViT-B-32", "laion2b-s34b-b79k") is not None


PROBE = """
import json, sys, time
start = time.perf_counter()
from retrieval.models.specs import ModelSpec, resolve
from retrieval.training.dual import check_arch
out = {}
for name, call in (
    ("offline", lambda: resolve(ModelSpec("ViT-B-32", "laion2b_s34b_b79k"))),
    ("unknown", lambda: resolve(ModelSpec("ViT-B-33", "x"))),
    ("arch", lambda: check_arch("xmr-tiny")),
):
    try:
        call()
        out[name] = "no error"
    except Exception as exc:
        out[name] = f"{type(exc).__name__}: {exc}"
out["torch"] = "torch" in sys.modules or "open_clip" in sys.modules
out["seconds"] = time.perf_counter() - start
print(json.dumps(out))
"""


def test_refusals_that_need_no_model_come_without_torch(tmp_path: Path) -> None:
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_HOME": str(tmp_path / "hf"), "XDG_CACHE_HOME": str(tmp_path)}
    done = subprocess.run(
        [sys.executable, "-c", PROBE], cwd=REPO, env=env, capture_output=True, text=True, timeout=120, check=True
    )
    out = json.loads(done.stdout.splitlines()[-1])
    assert out["offline"].startswith("WeightsUnavailableError") and "HF_HUB_OFFLINE" in out["offline"]
    assert out["unknown"].startswith("ModelNotFoundError") and "Did you mean ViT-B-32" in out["unknown"]
    assert out["arch"].startswith("TrainingError") and "xmr-shapes-xs" in out["arch"]
    assert out["torch"] is False  # the seconds of importing torch and open_clip are not spent on a refusal
