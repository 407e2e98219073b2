#!/usr/bin/env bash
# Install, check lint/format/types, then run the whole test suite (unit tests, a CPU training run,
# a sweep through Ray and MLflow). Extra arguments go to pytest, e.g.  bash scripts/test.sh -m "not slow"
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
# The multi-node test runs mlflow server on a real PostgreSQL (Debian's); install it where we can.
if [ ! -x /usr/lib/postgresql/15/bin/initdb ] && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
  echo "installing Debian's postgresql for the cluster test" >&2
  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null) ||
    echo "could not install postgresql: the cluster test will be skipped" >&2
fi
# lint, format and types first: a minute at most, and CI enforces them (pyproject.toml configures each)
.venv/bin/ruff check --quiet vgs tests scripts
.venv/bin/ruff format --check --quiet vgs tests scripts
.venv/bin/mypy
# two test processes (pytest-xdist): most tests train on one thread, so two keep both cores busy;
# the longest start first and each process takes the next test when it is ready (tests/conftest.py,
# tests/durations.json). VGS_TEST_WORKERS=1 runs them in one.
exec .venv/bin/python -m pytest -q -n "${VGS_TEST_WORKERS:-2}" --maxschedchunk 1 --durations=15 "$@"
