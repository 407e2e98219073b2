#!/usr/bin/env bash
# The GPU check in one call, on a machine with PyTorch and a GPU (docs/gpu-and-cluster.md, "GPU speed"): run from the
# repository root with gpu_carry/ beside the code (scripts/gpu_carry.sh). Results go to $OUT
# (default ./gpu_check_out): gpu_check.json and gpu_check.txt. Uses python3 unless PYTHON is set.
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-$PWD/gpu_check_out}
export VGS_HOME="$PWD/gpu_carry/home" PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
if [ -f gpu_carry/shared/bench/reference_step.py ]; then export VGS_SHARED="$PWD/gpu_carry/shared"; fi
export VGS_COMMIT="$(cat gpu_carry/COMMIT 2>/dev/null || echo unknown)"
"${PYTHON:-python3}" -m vgs.tools.gpu_check --out "$OUT" "$@"
