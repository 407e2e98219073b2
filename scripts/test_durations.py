"""Refresh tests/durations.json, the seconds each test took, from a full run's --durations=0 output:

    .venv/bin/python -m pytest -n 2 --durations=0 -p no:cacheprovider > run.log; \
        .venv/bin/python scripts/test_durations.py run.log

tests/conftest.py starts the longest tests first from it, so that the two test processes finish
together instead of one running a long test alone at the end.  Only tests of a second or more are
kept: the order of the rest does not matter."""

import json
import re
import sys
from pathlib import Path

LINE = re.compile(r"^(\d+\.\d+)s (?:setup|call|teardown)\s+tests/(\S+)$")


def durations(log: str) -> dict[str, float]:
    """Seconds per test (setup, call and teardown together), by its id under tests/."""
    total: dict[str, float] = {}
    for line in log.splitlines():
        m = LINE.match(line.strip())
        if m:
            total[m[2]] = total.get(m[2], 0.0) + float(m[1])
    return {k: round(v, 1) for k, v in sorted(total.items(), key=lambda kv: -kv[1]) if v >= 1.0}


if __name__ == "__main__":
    found = durations(Path(sys.argv[1]).read_text())
    out = Path(__file__).resolve().parents[1] / "tests" / "durations.json"
    out.write_text(json.dumps(found, indent=0) + "\n")
    print(f"{len(found)} tests of a second or more, {sum(found.values()):.0f} s in all -> {out}")
