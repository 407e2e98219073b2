"""Run the tests that assert a learned score against a threshold under perturbed arithmetic, and
print each score's margin: one torch thread, two threads, and ATEN_CPU_CAPABILITY=default (other
kernels, other rounding).  A margin that holds in all three is one another machine should keep.

    .venv/bin/python scripts/margins.py [TEST ...]

(default: THRESHOLD_TESTS; the three settings at once, about 25 minutes on 2 cores)
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
THRESHOLD_TESTS = [
    "tests/test_train.py::test_training_learns_beyond_chance",
    "tests/test_learning_text.py",
    "tests/test_families.py::test_analysis_metrics_on_request",
    "tests/test_ray_train.py::test_two_worker_trial_matches_one_worker",
    "tests/test_frontends.py::test_a_frozen_ssl_front_end_learns_beyond_chance_end_to_end",
]
SETTINGS = {  # name -> environment
    "1 thread": {"VGS_TEST_THREADS": "1"},
    "2 threads": {"VGS_TEST_THREADS": "2"},
    "ATEN default": {"VGS_TEST_THREADS": "1", "ATEN_CPU_CAPABILITY": "default"},
}


def run(tests: list[str]) -> list[dict]:
    """Every setting's pytest at once (the scores do not depend on the load, only the minutes do), in one
    shared corpora folder (tests/conftest.py: the first to need a corpus generates it)."""
    records = []
    with tempfile.TemporaryDirectory(prefix="vgs-margins-") as tmp:
        started, runs = time.time(), {}
        for k, (name, extra) in enumerate(SETTINGS.items()):
            out = Path(tmp) / f"{k}.jsonl"
            env = {**os.environ, **extra, "VGS_MARGINS": str(out), "VGS_TEST_CORPORA": str(Path(tmp) / "corpora")}
            command = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *tests]
            runs[name] = (out, subprocess.Popen(command, cwd=ROOT, env=env, stdout=subprocess.PIPE, text=True))
        for name, (out, proc) in runs.items():
            stdout = proc.communicate()[0].strip()
            last = stdout.splitlines()[-1] if stdout else f"exit {proc.returncode}"
            print(f"{name}: {last} (done after {time.time() - started:.0f} s)", file=sys.stderr, flush=True)
            for line in out.read_text().splitlines() if out.exists() else []:
                records.append({**json.loads(line), "setting": name})
    return records


def table(records: list[dict]) -> str:
    header = ["test", "score", "threshold", *SETTINGS, "smallest margin"]
    rows = ["| " + " | ".join(header) + " |", "|---" * len(header) + "|"]
    keys = list(dict.fromkeys((r["test"], r["what"]) for r in records))
    for test, what in keys:
        mine = [r for r in records if (r["test"], r["what"]) == (test, what)]
        by = {r["setting"]: r for r in mine}
        cells = [f"{by[s]['value']:.4g}" if s in by else "-" for s in SETTINGS]
        smallest = min(r["margin"] for r in mine)
        name = test.split("::")[-1]
        rows.append(f"| {name} | {what} | {mine[0]['threshold']:.4g} | {' | '.join(cells)} | {smallest:.4g} |")
    return "\n".join(rows)


if __name__ == "__main__":
    recs = run(sys.argv[1:] or THRESHOLD_TESTS)
    print(table(recs))
    sys.exit(0 if recs and all(r["margin"] >= 0 for r in recs) else 1)
