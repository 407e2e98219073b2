"""requirements.lock: it pins every dependency vgs declares, within pyproject.toml's ranges, and
the environment the tests run in is exactly it (scripts/setup.sh installs it), so its hash is the
one docs/results.md's figures name."""

from __future__ import annotations

import os
import platform
import re
import sys
import tomllib
from pathlib import Path

import pytest
from packaging.requirements import Requirement

from vgs.environment import UNHASHED, environment_hash, installed

ROOT = Path(__file__).resolve().parents[1]


def locked() -> dict[str, str]:
    text = (ROOT / "requirements.lock").read_text()
    pins = re.findall(r"^([A-Za-z0-9._-]+)==(\S+) \\\n    --hash=sha256:[0-9a-f]{64}$", text, re.M)
    assert len(pins) == text.count("=="), "every pin has exactly one sha256"
    return {name.lower().replace("_", "-"): version for name, version in pins}


def test_the_lock_pins_every_declared_dependency_within_its_range():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    declared = [Requirement(r) for r in project["dependencies"] + project["optional-dependencies"]["test"]]
    pins = locked()
    for req in declared:
        if req.marker and not req.marker.evaluate():
            continue
        name = req.name.lower().replace("_", "-")
        assert name in pins, f"{req} is declared but not in requirements.lock: run scripts/lock.py"
        assert req.specifier.contains(pins[name], prereleases=True), f"lock has {name}=={pins[name]}, outside {req}"
        for extra in req.extras:  # ray[tune,train] brings its extras' packages
            assert extra in ("tune", "train", "binary"), extra
    assert "psycopg-binary" in pins and "pandas" in pins  # from psycopg[binary] and ray[tune]


@pytest.mark.skipif(
    sys.version_info[:2] != (3, 11)
    or sys.platform != "linux"
    or platform.machine() != "x86_64"
    or bool(os.environ.get("VGS_UNLOCKED")),
    reason="requirements.lock is for CPython 3.11 on Linux x86_64 (setup installed pyproject.toml's ranges)",
)
def test_setup_installed_exactly_the_lock_so_the_environment_hash_is_the_locks():
    pins, here = locked(), installed()
    wrong = {n: (v, here.get(n)) for n, v in pins.items() if here.get(n) != v}
    extra = sorted(set(here) - set(pins) - UNHASHED)
    assert not wrong and not extra, f"not the lock (locked, installed): {wrong}; not in the lock: {extra}"
    assert environment_hash() == environment_hash(pins)
    import ray  # noqa: F401 - it puts its vendored packages on sys.path; the hash must not see them

    assert environment_hash() == environment_hash(pins)


def test_results_md_names_the_locked_environment():
    """The demo's entry in docs/results.md was produced in the locked environment: after a refresh of
    the lock, rerun the demo (bash scripts/demo.sh) and record it."""
    results = (ROOT / "docs/results.md").read_text()
    hashes = re.findall(r"\benv ([0-9a-f]{16})\b", results)
    assert hashes, "docs/results.md names no environment (python -m vgs.environment prints the line)"
    assert environment_hash(locked()) in hashes, (
        f"docs/results.md names {hashes}, the lock is {environment_hash(locked())}"
    )
