#!/usr/bin/env bash
# Build gpu_carry/: what the GPU check needs beside the code on a machine with only PyTorch (no
# Ray, MLflow, Optuna, soundfile or espeak): a 60-image built-in corpus and its feature stores, as
# a VGS_HOME. About 40 MiB; made once, here, where eSpeak NG and soundfile are installed.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
rm -rf gpu_carry
# -c, not a script on stdin: the corpus generator's worker processes import the main module
VGS_HOME="$PWD/gpu_carry/home" .venv/bin/python -c 'from vgs.data.prepare import prepare, resolve_paths
from vgs.tools.gpu_check import family_config
prepare(resolve_paths(family_config("coembed", "cpu", "off").data))' 
# the reference step the benchmark compares against (the workplace's shared/ beside the checkout)
ref="${VGS_SHARED:-../shared}/bench/reference_step.py"
if [ -f "$ref" ]; then mkdir -p gpu_carry/shared/bench && cp "$ref" gpu_carry/shared/bench/; fi
git rev-parse --short=12 HEAD > gpu_carry/COMMIT 2>/dev/null || echo unknown > gpu_carry/COMMIT
du -sh gpu_carry
