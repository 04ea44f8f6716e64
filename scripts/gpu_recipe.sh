#!/usr/bin/env bash
# Train the full k-MTR recipe on one GPU and bring the weights back.
#
#   bash scripts/gpu_recipe.sh [CONFIG]      (default configs/train_gpu.toml)
#
# On the device machine: sets up .venv (torch pinned as in the Makefile; a CUDA build
# of the same version is used when one is installed there), simulates the cohort
# with all cores, trains under bf16 autocast, fits the OOD statistics, and copies
# model.*, upper.* and metrics.jsonl to $OUT (or out/gpu when $OUT is unset).
# On a CPU it runs the same steps; `bash scripts/gpu_recipe.sh configs/train_tiny.toml`
# checks the script end to end in a minute.
set -euo pipefail
cd "$(dirname "$0")/.."
CONFIG="${1:-configs/train_gpu.toml}"
DEST="${OUT:-out/gpu}"
[ -x .venv/bin/kmtr-stream ] || make .venv/.installed
export OMP_NUM_THREADS="${OMP_NUM_THREADS:-8}" OPENBLAS_NUM_THREADS=1
RUN_DIR="$(.venv/bin/python -c "import sys; from kmtr_stream.training.config import load_config; print(load_config(sys.argv[1]).train.out_dir)" "$CONFIG")"
.venv/bin/python -c "import torch; print('device:', torch.cuda.get_device_name(0) if torch.cuda.is_available() else 'cpu')"
.venv/bin/kmtr-stream train "$CONFIG"
.venv/bin/kmtr-stream calibrate-ood "$RUN_DIR/model" --subjects 200
mkdir -p "$DEST"
cp "$RUN_DIR"/model.* "$RUN_DIR"/metrics.jsonl "$DEST"/
if [ -f "$RUN_DIR/upper.json" ]; then cp "$RUN_DIR"/upper.* "$DEST"/; fi
echo "weights in $DEST"
