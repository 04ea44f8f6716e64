#!/usr/bin/env bash
# Every accuracy figure of the README and the model card, from the installed weights.
#
#   bash scripts/reproduce_figures.sh [OUT_DIR]     (default runs/figures)
#
# Writes results.json / robustness.json / logs under OUT_DIR. About 25 minutes on 2 CPU
# cores (most of it simulating the 1,000-subject test cohort and the shifted cohort once).
set -euo pipefail
cd "$(dirname "$0")/.."
OUT="${1:-runs/figures}"
mkdir -p "$OUT"
export OMP_NUM_THREADS=2 OPENBLAS_NUM_THREADS=1
K=.venv/bin/kmtr-stream
$K evaluate --subjects 1000 --accelerations 4 --hd95-subjects 200 --out "$OUT/eval_1000_r4" \
    | tee "$OUT/eval_1000_r4.txt"
$K evaluate --subjects 200 --cohort-size 1000 --accelerations 1,2,4,8,12 --hd95-subjects 50 \
    --out "$OUT/eval_200_sweep" | tee "$OUT/eval_200_sweep.txt"
$K evaluate --subjects 1000 --randomize shifted --accelerations 4 --hd95-subjects 50 \
    --out "$OUT/eval_shifted" | tee "$OUT/eval_shifted.txt"
$K robustness --subjects 200 --cohort-size 1000 --out "$OUT/robustness" | tee "$OUT/robustness.txt"
.venv/bin/python scripts/protocol_sweep.py --subjects 10 --out "$OUT/protocols.json" \
    | tee "$OUT/protocols.txt"
$K demo --no-pace | tee "$OUT/demo.txt"
