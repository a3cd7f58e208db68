#!/usr/bin/env bash
# The Shapes World recipe: generate train/test splits, train the recommended small encoder,
# evaluate it. Usage: benchmarks/shapes_recipe.sh OUT_DIR   (run from the repository root)
# Writes OUT_DIR/{train,test}/ (pairs), OUT_DIR/encoder/ (model), OUT_DIR/metrics.json and
# OUT_DIR/recipe.log (commands, settings and wall times).
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
export HF_HUB_OFFLINE=1
mkdir -p "$out"
log="$out/recipe.log"
start=$(date +%s)
stamp() { echo "[$(( $(date +%s) - start )) s] $*" | tee -a "$log"; }

stamp "commit $(git rev-parse --short HEAD 2>/dev/null || echo unknown); $(nproc) cores"
[ -f "$out/train/pairs.jsonl" ] || "$py" benchmarks/shapes_world.py "$out/train" --count "$train_count" --seed 1 --split train
[ -f "$out/test/pairs.jsonl" ] || "$py" benchmarks/shapes_world.py "$out/test" --count "$test_count" --seed 2 --split eval
stamp "data ready: $train_count train pairs (seed 1), $test_count test pairs (seed 2)"
"$xmr" train "$out/train" --out "$out/encoder" --arch "$arch" --steps "$steps" --batch-size "$batch" --lr "$lr" --seed 0
stamp "trained $arch: $steps steps x $batch pairs, lr $lr"
"$xmr" eval "$out/test" --model "$out/encoder" --groups shapes-world --json > "$out/metrics.json"
stamp "evaluated: $(cat "$out/metrics.json")"
stamp "wall time $(( $(date +%s) - start )) s"
