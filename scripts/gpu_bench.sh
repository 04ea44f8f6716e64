#!/usr/bin/env bash
# GPU tests and the GPU bench as one prepared command; JSON and PNG land in $OUT.
#
#   bash scripts/gpu_bench.sh [--device cpu] [--quick]
#
# On the device machine: sets up .venv (torch pinned as in the Makefile; the CUDA build
# of the same version when one is installed there, and CuPy from the 'gpu' extra when it
# installs), runs the GPU-marked tests (tests/gpu) and `kmtr-stream bench` (default
# protocol, 4x, paced and unpaced A/B/A/B, then 4 scanners), and copies bench*.json,
# bench*.png and the test log to $OUT (out/gpu-bench when $OUT is unset).
# `--device cpu --quick` runs the same steps on a CPU with tiny sizes (checks the script).
set -euo pipefail
cd "$(dirname "$0")/.."
DEVICE=cuda
QUICK=0
for arg in "$@"; do
  case "$arg" in
    --device) ;;
    cpu|cuda) DEVICE="$arg" ;;
    --quick) QUICK=1 ;;
    *) echo "unknown argument: $arg" >&2; exit 2 ;;
  esac
done
DEST="${OUT:-out/gpu-bench}"
mkdir -p "$DEST"
[ -x .venv/bin/kmtr-stream ] || make .venv/.installed
if [ "$DEVICE" = cuda ]; then
  .venv/bin/pip install -q 'cupy-cuda12x>=13' || echo "note: CuPy not installed; chains use NumPy buffers"
else
  export CUDA_VISIBLE_DEVICES=""
fi
export OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1
.venv/bin/python -c "import torch; print('device:', torch.cuda.get_device_name(0) if torch.cuda.is_available() else 'cpu')" | tee "$DEST/device.txt"
# GPU tests skip cleanly without a device; their log comes back either way.
.venv/bin/pytest -q tests/gpu -m gpu 2>&1 | tee "$DEST/gpu_tests.log" || true
if [ "$QUICK" = 1 ]; then
  SIZE=(--subjects 1 --rounds 1 --slices 2 --phases 2)
  SCAN=(--subjects 1 --rounds 1 --slices 2 --phases 2 --scanners 2 --no-unpaced)
else
  SIZE=(--subjects 5 --rounds 2)
  SCAN=(--subjects 4 --rounds 1 --scanners 4)
fi
.venv/bin/kmtr-stream bench "${SIZE[@]}" --out "$DEST/single"
.venv/bin/kmtr-stream bench "${SCAN[@]}" --out "$DEST/scanners"
for d in single scanners; do
  cp "$DEST/$d/bench.json" "$DEST/bench_$d.json"
  [ -f "$DEST/$d/bench.png" ] && cp "$DEST/$d/bench.png" "$DEST/bench_$d.png"
done
echo "results in $DEST"
