#!/usr/bin/env bash
# The main job: install, generate the built-in corpus if missing, run the gru_layers sweep.
# Extra arguments go to `python -m vgs.sweep`, e.g.  bash scripts/demo.sh train.epochs=20
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
exec .venv/bin/python -m vgs.sweep "${SWEEP:-gru_layers}" "$@"
