#!/usr/bin/env bash
# Create .venv (Python 3.11) and install vgs with its test extras; a no-op when pyproject.toml
# has not changed since the last install.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-}
if [ -z "$PY" ]; then
  for candidate in python3.11 python3 python; do
    if command -v "$candidate" >/dev/null 2>&1; then PY=$candidate; break; fi
  done
fi
"$PY" - <<'PYCHECK' || { echo "vgs needs Python 3.11 or 3.12 (set PYTHON=/path/to/python3.11)" >&2; exit 1; }
import sys
sys.exit(0 if (3, 11) <= sys.version_info[:2] <= (3, 12) else 1)
PYCHECK
if [ ! -x .venv/bin/python ]; then
  echo "creating .venv with $("$PY" --version)" >&2
  "$PY" -m venv .venv
fi
# requirements.lock (scripts/lock.py) pins every dependency with its file's sha256 for CPython 3.11 on
# Linux x86_64, the machines docs/results.md's figures come from: there setup installs exactly it, so
# a fresh clone has the environment hash results.md names (`vgs env`). Elsewhere, or with
# VGS_UNLOCKED=1, pip resolves pyproject.toml's ranges (each sweep records the versions it got).
locked=$(.venv/bin/python -c 'import platform, sys; print(int(sys.version_info[:2] == (3, 11) and sys.platform == "linux" and platform.machine() == "x86_64"))')
if [ -n "${VGS_UNLOCKED:-}" ] || [ ! -f requirements.lock ]; then locked=0; fi
stamp=.venv/.vgs-installed
want="$(cat pyproject.toml requirements.lock 2>/dev/null | sha256sum | cut -d' ' -f1) locked=$locked"
if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
  echo "installing vgs and its dependencies into .venv (about two minutes the first time)" >&2
  .venv/bin/python -m pip install --quiet --upgrade pip
  if [ "$locked" = 1 ]; then
    .venv/bin/python -m pip install --quiet --require-hashes -r requirements.lock
    .venv/bin/python -m pip install --quiet --no-deps --no-build-isolation -e .  # setuptools: from the lock
  else
    echo "installing from pyproject.toml's version ranges, not requirements.lock (that is for CPython 3.11 on Linux x86_64)" >&2
    .venv/bin/python -m pip install --quiet -e ".[test]"
  fi
  echo "$want" > "$stamp"
fi
