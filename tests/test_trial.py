"""A trial's scratch folder (vgs.sweep.trial): its own checkpoints stay out of Ray's synced trial
folder and are removed with the trial, or by the next trial after a kill."""

import os
import subprocess
import sys
import tempfile

import pytest

from vgs.sweep.trial import scratch_folder


def _gone_pid() -> int:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


def test_a_trial_scratch_folder_is_removed_at_its_end_and_a_killed_trials_by_the_next(tmp_path, monkeypatch):
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    orphan = tmp_path / f"vgs-trial-ab12-pid{_gone_pid()}-x1y2"  # its process was killed mid-trial
    (orphan / "out").mkdir(parents=True)
    (orphan / "out" / "last.pt").write_bytes(b"weights")
    live = tmp_path / f"vgs-trial-cd34-pid{os.getpid()}-z3w4"  # a trial still running
    live.mkdir()
    with pytest.raises(RuntimeError), scratch_folder("vgs-trial-ef56-") as scratch:
        assert scratch.parent == tmp_path and scratch.name.startswith(f"vgs-trial-ef56-pid{os.getpid()}-")
        (scratch / "last.pt").write_bytes(b"weights")
        assert not orphan.exists() and live.exists()
        raise RuntimeError("a trial that fails still removes its folder")
    assert not scratch.exists() and live.exists()
