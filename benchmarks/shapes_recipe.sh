#!/usr/bin/env bash
# The Shapes World recipe: generate train/test splits, train the recommended small encoder,
# evaluate it, train the default reranker on its token features and evaluate with reranking.
# Usage: benchmarks/shapes_recipe.sh OUT_DIR   (run from the repository root)
# Writes OUT_DIR/{train,test}/ (pairs), OUT_DIR/encoder/ (model), OUT_DIR/metrics.json,
# OUT_DIR/reranker/, OUT_DIR/metrics_reranked.json and OUT_DIR/recipe.log (commands,
# settings and wall times). RERANK=0 skips the reranker.
set -euo pipefail
out=${1:?usage: benchmarks/shapes_recipe.sh OUT_DIR}
py=${PYTHON:-.venv/bin/python}
xmr=${XMR:-.venv/bin/xmr}
train_count=${TRAIN_COUNT:-30000}
test_count=${TEST_COUNT:-1000}
arch=${ARCH:-xmr-shapes-xs}
steps=${STEPS:-600}
batch=${BATCH:-256}
lr=${LR:-2e-3}
rerank=${RERANK:-1}
rr_fusion=${RR_FUSION:-cross-attention}
rr_steps=${RR_STEPS:-800}
rr_k=${RR_K:-50}
export HF_HUB_OFFLINE=1
mkdir -p "$out"
log="$out/recipe.log"
start=$(date +%s)
stamp() { echo "[$(( $(date +%s) - start )) s] $*" | tee -a "$log"; }

stamp "commit $(git rev-parse --short HEAD 2>/dev/null || echo unknown); $(nproc) cores"
[ -f "$out/train/pairs.jsonl" ] || "$py" retrieval/training/shapes_world.py "$out/train" --count "$train_count" --seed 1 --split train
[ -f "$out/test/pairs.jsonl" ] || "$py" retrieval/training/shapes_world.py "$out/test" --count "$test_count" --seed 2 --split eval
stamp "data ready: $train_count train pairs (seed 1), $test_count test pairs (seed 2)"
"$xmr" train "$out/train" --out "$out/encoder" --arch "$arch" --steps "$steps" --batch-size "$batch" --lr "$lr" --seed 0
stamp "trained $arch: $steps steps x $batch pairs, lr $lr"
"$xmr" eval "$out/test" --model "$out/encoder" --groups shapes-world --json > "$out/metrics.json"
stamp "evaluated: $(cat "$out/metrics.json")"
if [ "$rerank" = 1 ]; then
  "$xmr" train-reranker "$out/train" --model "$out/encoder" --out "$out/reranker" --fusion "$rr_fusion" --steps "$rr_steps" --seed 0
  stamp "trained reranker: $rr_fusion, $rr_steps steps"
  "$xmr" eval "$out/test" --model "$out/encoder" --groups shapes-world --reranker "$out/reranker" --rerank-k "$rr_k" --json > "$out/metrics_reranked.json"
  stamp "evaluated with reranking (K=$rr_k): $(cat "$out/metrics_reranked.json")"
fi
stamp "wall time $(( $(date +%s) - start )) s"
