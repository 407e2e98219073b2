#!/usr/bin/env bash
# Install, then run the whole test suite (unit tests, a CPU training run, a sweep through Ray
# and MLflow). Extra arguments go to pytest, e.g.  bash scripts/test.sh -m "not slow"
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
exec .venv/bin/python -m pytest -q "$@"
