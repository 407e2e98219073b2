"""The margins of the threshold tests survive other arithmetic: the cheap form of scripts/margins.py
(which runs every threshold test with 1 and 2 threads and with ATEN_CPU_CAPABILITY=default)."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_text_image_learning_keeps_its_margin_with_other_kernels_and_two_threads(learning_corpus, vgs_home, tmp_path):
    records = tmp_path / "margins.jsonl"
    env = {
        **os.environ,
        "ATEN_CPU_CAPABILITY": "default",  # torch's portable kernels: other vectorisation, other rounding
        "VGS_TEST_THREADS": "2",
        "VGS_MARGINS": str(records),
        "VGS_TEST_HOME": str(vgs_home),  # the corpus this session already made
    }
    test = "tests/test_learning_text.py::test_text_image_retrieval_beats_chance"
    r = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", test],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-2000:]
    (record,) = [json.loads(line) for line in records.read_text().splitlines()]
    assert record["isa"] == "default" and record["threads"] == "2" and record["margin"] > 0, record


def test_the_margins_script_lists_every_threshold_test():
    sys.path.insert(0, str(ROOT / "scripts"))
    try:
        from margins import THRESHOLD_TESTS
    finally:
        sys.path.pop(0)
    users = sorted(
        str(p.relative_to(ROOT))
        for p in (ROOT / "tests").glob("test_*.py")
        if "margin.at_" in p.read_text() and p.name != "test_margins.py"
    )
    assert users == sorted({t.split("::")[0] for t in THRESHOLD_TESTS})
