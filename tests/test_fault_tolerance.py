"""Fault tolerance of a real sweep: a trial's worker process killed mid-training resumes from
its last checkpoint (Ray FailureConfig), and the sweep ends with every trial once in MLflow."""
import os
import re
import signal
import subprocess
import sys

import pytest


@pytest.mark.slow
def test_killed_trial_worker_resumes_from_its_checkpoint(tmp_path):
    env = {**os.environ, "VGS_HOME": str(tmp_path / "home"), "RAY_DEDUP_LOGS": "0"}  # every epoch line
    env.pop("RAY_ADDRESS", None)
    db = tmp_path / "mlflow.db"
    cmd = [sys.executable, "-m", "vgs.sweep", "smoke", "--storage", str(tmp_path / "ray"), "--tracking-uri",
           f"sqlite:///{db}", "--samples", "1", "train.epochs=8", "train.captions_per_image=0",
           "data.builtin_images=80"]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, cwd=tmp_path, env=env)
    # The trial's progress lines carry its worker's pid: "(run_trial pid=123) [DG1A128-tiny] epoch 2/8 ...".
    # Once epoch 2 is reported (and checkpointed), SIGKILL that process: nothing gets to clean up.
    killed, lines = None, []
    for line in proc.stdout:
        lines.append(line)
        m = re.search(r"run_trial pid=(\d+)\).*epoch 2/8", line)
        if m and killed is None:
            killed = int(m.group(1))
            os.kill(killed, signal.SIGKILL)
    proc.wait(timeout=600)
    log = "".join(lines)
    assert killed is not None, log[-3000:]
    assert proc.returncode == 0, log[-5000:]
    from mlflow.tracking import MlflowClient

    client = MlflowClient(f"sqlite:///{db}")
    exp = client.get_experiment_by_name("vgs-smoke")
    trials = client.search_runs([exp.experiment_id], "tags.`vgs.kind` = 'trial'")
    assert len(trials) == 1 and trials[0].info.status == "FINISHED", log[-3000:]
    steps = sorted(h.step for h in client.get_metric_history(trials[0].info.run_id, "val_s2i_r10"))
    # resumed from the checkpoint: the epochs run on to 8, and epoch 1 was not trained again
    assert steps[-1] == 8 and steps.count(1) == 1, steps
    restarted = [x for x in lines if "epoch 3/8" in x or "epoch 4/8" in x]
    assert restarted and all(f"pid={killed})" not in x for x in restarted if "epoch 4/8" in x)


@pytest.mark.slow
def test_interrupted_sweep_driver_resumes_without_duplicate_runs(tmp_path):
    env = {**os.environ, "VGS_HOME": str(tmp_path / "home"), "RAY_DEDUP_LOGS": "0"}  # every epoch line
    env.pop("RAY_ADDRESS", None)
    db = tmp_path / "mlflow.db"
    base = [sys.executable, "-m", "vgs.sweep", "smoke", "--storage", str(tmp_path / "ray"), "--tracking-uri",
            f"sqlite:///{db}", "train.epochs=6", "train.captions_per_image=0", "data.builtin_images=80"]
    proc = subprocess.Popen(base, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, cwd=tmp_path, env=env)
    interrupted, lines = False, []
    for line in proc.stdout:
        lines.append(line)
        if not interrupted and re.search(r"epoch 2/6", line):
            proc.send_signal(signal.SIGINT)  # Ctrl-C of the driver
            interrupted = True
    proc.wait(timeout=300)
    first = "".join(lines)
    assert interrupted, first[-3000:]
    assert "interrupted" in first and "--resume" in first, first[-3000:]

    again = subprocess.run(base + ["--resume"], capture_output=True, text=True, cwd=tmp_path, env=env, timeout=600)
    assert again.returncode == 0, again.stdout[-2000:] + again.stderr[-4000:]
    from mlflow.tracking import MlflowClient

    client = MlflowClient(f"sqlite:///{db}")
    exp = client.get_experiment_by_name("vgs-smoke")
    runs = client.search_runs([exp.experiment_id])
    assert len([r for r in runs if r.data.tags.get("vgs.kind") == "sweep"]) == 1
    trials = [r for r in runs if r.data.tags.get("vgs.kind") == "trial"]
    assert len(trials) == 2, [r.data.tags for r in trials]
    for t in trials:
        steps = [h.step for h in client.get_metric_history(t.info.run_id, "val_s2i_r10")]
        assert sorted(set(steps)) == list(range(1, int(t.data.tags["vgs.epochs_run"]) + 1)), steps
