#!/usr/bin/env bash
# Every fusion head against the dual encoder alone, on a finished shapes_recipe.sh folder.
# Usage: benchmarks/rerank_heads.sh OUT_DIR [HEAD ...]   (run from the repository root)
# HEAD is a --fusion name, or NAME:nospatial for the same head without the spatial readout.
# Default heads: every registered one. For each head it trains OUT_DIR/heads/HEAD with the
# trainer's defaults (seed 0) on OUT_DIR/train, evaluates OUT_DIR/test with reranking at
# K=${RR_K:-50} into OUT_DIR/heads/HEAD.json, and appends wall times to OUT_DIR/heads/heads.log.
# A head whose .json exists is skipped, so an interrupted run resumes where it stopped.
# Then it prints a markdown table (dual encoder from OUT_DIR/metrics.json, then each head).
set -euo pipefail
out=${1:?usage: benchmarks/rerank_heads.sh OUT_DIR [HEAD ...]}
shift
py=${PYTHON:-.venv/bin/python}
xmr=${XMR:-.venv/bin/xmr}
rr_k=${RR_K:-50}
export HF_HUB_OFFLINE=1
[ -f "$out/metrics.json" ] || { echo "$out/metrics.json missing: run benchmarks/shapes_recipe.sh $out first" >&2; exit 2; }
if [ $# -eq 0 ]; then
  set -- $("$py" -c "from retrieval.rerank.heads import list_heads; print(' '.join(list_heads()))")
fi
mkdir -p "$out/heads"
log="$out/heads/heads.log"
echo "commit $(git rev-parse --short HEAD 2>/dev/null || echo unknown); $(nproc) cores; $(date -u +%FT%TZ)" >> "$log"
for head in "$@"; do
  name=${head%%:*}
  flags=()
  [ "$head" = "$name:nospatial" ] && flags+=(--no-spatial)
  dir="$out/heads/${head/:/-}"
  [ -f "$dir.json" ] && { echo "$head: $dir.json exists, skipped" | tee -a "$log"; continue; }
  t0=$(date +%s)
  "$xmr" train-reranker "$out/train" --model "$out/encoder" --out "$dir" --fusion "$name" "${flags[@]}" --seed 0
  t1=$(date +%s)
  "$xmr" eval "$out/test" --model "$out/encoder" --groups shapes-world --reranker "$dir" --rerank-k "$rr_k" --json > "$dir.json.tmp"
  mv "$dir.json.tmp" "$dir.json"
  echo "$head: trained in $(( t1 - t0 )) s, evaluated in $(( $(date +%s) - t1 )) s" | tee -a "$log"
done
"$py" - "$out" "$@" <<'PY'
import json, sys
from pathlib import Path
out, heads = Path(sys.argv[1]), sys.argv[2:]
rows = [("dual encoder alone", out / "metrics.json")] + [(h, out / "heads" / (h.replace(":", "-") + ".json")) for h in heads]
print("| | t2i R@1 / 5 / 10 | i2t R@1 / 5 / 10 | binding | colour / shape / size / relation | t2i R@1 one-obj / two-obj |")
print("|---|---|---|---|---|---|")
for label, path in rows:
    m = json.loads(path.read_text())
    r = lambda d: " / ".join(f"{d[k]:.3f}" for k in ("R@1", "R@5", "R@10"))
    b = m["binding_by_negative"]
    g = m["groups"]
    print(f"| {label} | {r(m['t2i'])} | {r(m['i2t'])} | {m['binding']:.3f} | "
          + " / ".join(f"{b[k]:.3f}" for k in ("colour", "shape", "size", "relation"))
          + f" | {g['one-object']['t2i']['R@1']:.3f} / {g['two-object']['t2i']['R@1']:.3f} |")
PY
