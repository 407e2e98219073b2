"""vgs's output goes through the `logging` module with one verbosity switch (vgs.log)."""

from __future__ import annotations

import logging
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from vgs import log
from vgs.progress import Progress

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture()
def restore_verbosity():
    before, env = log.ROOT.level, os.environ.get(log.ENV)
    yield
    log.ROOT.setLevel(before)
    if env is None:
        os.environ.pop(log.ENV, None)
    else:
        os.environ[log.ENV] = env


def test_the_switch_governs_messages_and_progress_bars(capsys, restore_verbosity):
    chatty = logging.getLogger("vgs.data.prepare")
    log.set_verbosity(1)
    chatty.info("a note")
    Progress("work", total=2, every_s=0.0).close()
    err = capsys.readouterr().err
    assert "a note" in err and "work [" in err
    log.set_verbosity(0)
    chatty.info("a note")
    chatty.warning("a warning")
    Progress("work", total=2, every_s=0.0).close()
    err = capsys.readouterr().err
    assert "a note" not in err and "work [" not in err and "a warning" in err
    assert os.environ[log.ENV] == "0"  # what child processes (Ray's workers) start from
    log.set_verbosity(1)
    with log.quiet():
        chatty.info("hidden")
    chatty.info("shown")
    err = capsys.readouterr().err
    assert "hidden" not in err and "shown" in err
    assert log.report_error(ValueError("no such thing")) == 2 and "error: no such thing" in capsys.readouterr().err


def test_child_processes_inherit_it_and_the_console_script_sets_it(tmp_path):
    env = {**os.environ, "VGS_HOME": str(tmp_path)}

    def synth(*before, module="vgs.cli", **extra_env):
        out = tmp_path / f"c{len(list(tmp_path.iterdir()))}"
        command = [*before, "synth"] if module == "vgs.cli" else []
        return subprocess.run(
            [
                sys.executable,
                "-m",
                module,
                *command,
                "--out",
                str(out),
                "--images",
                "6",
                "--val-images",
                "1",
                "--test-images",
                "1",
                "--speakers",
                "4",
                "--workers",
                "1",
            ],
            env={**env, **extra_env},
            capture_output=True,
            text=True,
            timeout=300,
        )

    loud = synth()
    assert loud.returncode == 0 and "built-in corpus: 6 images" in loud.stderr, loud.stderr[-2000:]
    as_main = synth(module="vgs.data.synth")  # its module logger is __main__'s: still vgs's handler
    assert as_main.returncode == 0 and "built-in corpus: 6 images" in as_main.stderr, as_main.stderr[-2000:]
    quiet = synth("-q")
    assert quiet.returncode == 0 and quiet.stderr == "", quiet.stderr[-2000:]
    silent = synth(**{log.ENV: "0"})
    assert silent.returncode == 0 and silent.stderr == "", silent.stderr[-2000:]


def test_no_module_writes_notes_to_stderr_itself():
    """Only the logger's handler, the progress bar and the console script's usage text do."""
    allowed = {"vgs/log.py", "vgs/progress.py", "vgs/cli.py"}
    offenders = []
    for path in sorted((ROOT / "vgs").rglob("*.py")):
        rel = str(path.relative_to(ROOT))
        if rel not in allowed and re.search(r"file=sys\.stderr|sys\.stderr\.write", path.read_text()):
            offenders.append(rel)
    assert not offenders
    assert not [p for p in (ROOT / "vgs").rglob("*.py") if re.search(r"\bquiet: bool\b", p.read_text())]
