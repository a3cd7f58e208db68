#!/usr/bin/env bash
# Slim install smoke test: what a search-only user installs (`pip install '.[cpu]'`: the base
# dependencies and faiss-cpu, no torch) indexes, searches and serves with an ONNX export.
#
#   .ci/slim_smoke.sh [FULL_VENV]       FULL_VENV (default .venv): a venv with the torch extra
#
# Exporting needs torch, so the tiny test model and its export (Immich's folder layout) are made
# with FULL_VENV first; the slim venv only ever sees the export folder. XMR_SLIM_VENV=DIR keeps
# the slim venv there (the benchmarks measure it) instead of in a temporary folder.
# Prints the install time and the size of the slim venv's site-packages next to FULL_VENV's.
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$PWD
full=$(cd "${1:-.venv}" && pwd)
work=$(mktemp -d)
trap 'kill "${server:-}" 2>/dev/null || true; rm -rf "$work"' EXIT
slim=${XMR_SLIM_VENV:-$work/slim}
export HF_HUB_OFFLINE=1 XDG_CACHE_HOME="$work/cache" XDG_DATA_HOME="$work/data"
unset PYTHONPATH XMR_LIBRARY
fail() { echo "slim smoke: $*" >&2; exit 1; }

# 1. The export, made in the full venv (torch, open_clip) from the tests' tiny model.
PYTHONPATH=$repo "$full/bin/python" -c "import sys; from pathlib import Path; \
from tests.helpers.tiny_model import make_tiny_model; make_tiny_model(Path(sys.argv[1]))" "$work/tiny"
"$full/bin/xmr" -q export-model "local-dir:$work/tiny" --out "$work/export"
[ -f "$work/export/visual/model.onnx" ] && [ -f "$work/export/textual/tokenizer.json" ] || fail "no export"

# 2. The slim venv: a regular (not editable) install of the base and the faiss-cpu extra, built
# from a copy of the sources (setuptools leaves build/ behind, whose stale files would ship).
mkdir "$work/src"
cp -r pyproject.toml README.md cli.py retrieval index xmr_cli "$work/src/"
find "$work/src" -name __pycache__ -prune -exec rm -rf {} +
rm -rf "$slim"
started=$(date +%s)
python3 -m venv "$slim"
"$slim/bin/pip" install -q "$work/src[cpu]" || fail "pip install '.[cpu]' failed"
install_s=$(($(date +%s) - started))
site=$("$slim/bin/python" -c "import sysconfig; print(sysconfig.get_paths()['purelib'])")
full_site=$("$full/bin/python" -c "import sysconfig; print(sysconfig.get_paths()['purelib'])")
echo "slim install: ${install_s} s; site-packages $(du -sh "$site" | cut -f1) (full venv: $(du -sh "$full_site" | cut -f1))"
cd "$work"  # nothing of the checkout on sys.path from here on: the installed wheel runs
for heavy in torch torchvision open_clip transformers cv2; do
  if "$slim/bin/python" -c "import $heavy" 2>/dev/null; then fail "$heavy is importable in the slim venv"; fi
done

# 3. Photos (PIL and numpy are base dependencies), then index and search on onnxruntime.
"$slim/bin/python" - "$work/photos" <<'EOF'
import sys
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

folder = Path(sys.argv[1])
(folder / "nested").mkdir(parents=True)
rng = np.random.default_rng(0)
for i in range(8):
    image = Image.fromarray((rng.random((96, 128, 3)) * 255).astype(np.uint8))
    ImageDraw.Draw(image).ellipse((20 + 4 * i, 10, 90, 80), fill=tuple(int(c) for c in rng.integers(0, 256, 3)))
    image.save(folder / ("nested" if i % 3 == 0 else ".") / f"photo_{i}.{'png' if i % 2 else 'jpg'}")
Image.new("RGB", (64, 48), (200, 30, 30)).save(folder.parent / "query.jpg")
EOF
xmr=("$slim/bin/xmr")
lib=(--library "$work/library")
"${xmr[@]}" index "$work/photos" --model "$work/export" "${lib[@]}" --json >"$work/index.json" || fail "index failed"
grep -q '"added": 8' "$work/index.json" || fail "index did not add 8 photos: $(cat "$work/index.json")"
"${xmr[@]}" search "a red circle" -k 3 --paths "${lib[@]}" >"$work/text.txt" || fail "text search failed"
"${xmr[@]}" search --image "$work/query.jpg" -k 2 --paths "${lib[@]}" >"$work/image.txt" || fail "image search failed"
[ "$(grep -c "^$work/photos/" "$work/text.txt")" = 3 ] || fail "text search: $(cat "$work/text.txt")"
[ "$(grep -c "^$work/photos/" "$work/image.txt")" = 2 ] || fail "image search: $(cat "$work/image.txt")"

# 4. The same searches in one process: neither torch nor another heavy stack gets imported.
"$slim/bin/python" - "$work/library" "$work/query.jpg" <<'EOF' || fail "a search imported a heavy module"
import sys

import cli

library, query = sys.argv[1], sys.argv[2]
for args in (["search", "a blue square", "-L", library], ["search", "--image", query, "-L", library]):
    try:
        cli.app([*args, "-k", "2", "--paths"])
    except SystemExit as done:
        assert not done.code, (args, done.code)
heavy = ("torch", "open_clip", "transformers", "cv2", "av", "fastapi", "huggingface_hub", "psycopg", "pathspec")
loaded = sorted(m for m in heavy if m in sys.modules)
print("heavy modules loaded:", loaded)
sys.exit(1 if loaded else 0)
EOF

# 5. xmr serve (the serve extra adds FastAPI and uvicorn, still no torch): one text query.
"$slim/bin/pip" install -q "$work/src[cpu,serve]" || fail "pip install '.[cpu,serve]' failed"
port=$((8600 + $$ % 300))
"${xmr[@]}" -q serve "${lib[@]}" --port "$port" >"$work/serve.log" 2>&1 &
server=$!
"$slim/bin/python" - "$port" <<'EOF' || { cat "$work/serve.log" >&2; fail "xmr serve did not answer a search"; }
import json
import sys
import time
import urllib.request

base = f"http://127.0.0.1:{sys.argv[1]}"
for _ in range(240):
    try:
        urllib.request.urlopen(f"{base}/api/info", timeout=5).read()
        break
    except OSError:
        time.sleep(0.5)
reply = json.loads(urllib.request.urlopen(f"{base}/api/search?q=a+red+circle&k=2", timeout=120).read())
assert len(reply["hits"]) == 2, reply
EOF
echo "slim smoke: ok (index, text and image search, serve; torch not installed)"
