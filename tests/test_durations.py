"""scripts/test_durations.py reads pytest's --durations=0 lines into tests/durations.json, the order
tests/conftest.py starts the tests in."""

import json
from pathlib import Path

from conftest import load_script

ROOT = Path(__file__).resolve().parents[1]


def test_durations_sum_setup_call_and_teardown_per_test_and_drop_short_ones():
    script = load_script("test_durations")
    log = """
============================= slowest durations ==============================
402.82s call     tests/test_paper_smoke.py::test_every_cell
115.44s setup    tests/test_frontends.py::test_ssl[a b]
126.19s call     tests/test_frontends.py::test_ssl[a b]
0.50s call     tests/test_x.py::test_quick
12 failed, 400 passed in 1798.23s (0:29:58)
"""
    assert script.durations(log) == {"test_paper_smoke.py::test_every_cell": 402.8}  # an id with a space is cut
    got = script.durations(log.replace("[a b]", "[ab]"))
    assert got == {"test_paper_smoke.py::test_every_cell": 402.8, "test_frontends.py::test_ssl[ab]": 241.6}


def test_the_recorded_durations_name_tests_that_exist():
    recorded = json.loads((ROOT / "tests" / "durations.json").read_text())
    files = {name.split("::")[0] for name in recorded}
    assert files and all((ROOT / "tests" / f).is_file() for f in files), files
    assert all(isinstance(s, float) and s >= 1.0 for s in recorded.values())
