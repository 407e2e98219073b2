"""Fault tolerance of a real sweep, in one run: a trial's worker process killed mid-training
resumes from its last checkpoint (Ray FailureConfig); then Ctrl-C of the driver stops the sweep
gracefully and `--resume` continues it (Tuner.restore) with every trial once in MLflow."""

import os
import re
import signal
import subprocess
import sys

import pytest


@pytest.mark.slow
def test_killed_worker_and_interrupted_driver_both_resume(tmp_path, vgs_home):
    env = {**os.environ, "VGS_HOME": str(vgs_home), "RAY_DEDUP_LOGS": "0"}  # the session's smoke corpus
    env.pop("RAY_ADDRESS", None)
    db = tmp_path / "mlflow.db"
    cmd = [
        sys.executable,
        "-m",
        "vgs.sweep",
        "smoke",
        "--storage",
        str(tmp_path / "ray"),
        "--tracking-uri",
        f"sqlite:///{db}",
        "--samples",
        "1",
        "train.epochs=8",
        "train.captions_per_image=0",
        "data.builtin_images=80",
        "--verbose",
    ]  # one trial: ASHA never prunes it, so it must come back
    # (--verbose: the trial's own output, with its worker's pid, reaches the driver)
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, cwd=tmp_path, env=env)
    # Progress lines carry the trial worker's pid: "(run_trial pid=123) [DG1A128-tiny] epoch 2/8 ...".
    # At a trial's epoch 2 (checkpointed), SIGKILL its process: nothing gets to clean up. Once that
    # trial reports again from a new process, Ctrl-C the driver.
    killed, killed_model, interrupted, lines = None, None, False, []
    for line in proc.stdout:
        lines.append(line)
        m = re.search(r"run_trial pid=(\d+)\).*\[(DG\w+-tiny)\] epoch (\d)/8", line)
        if not m:
            continue
        pid, model, epoch = int(m.group(1)), m.group(2), int(m.group(3))
        if killed is None and epoch == 2:
            killed, killed_model = pid, model
            os.kill(pid, signal.SIGKILL)
        elif killed is not None and model == killed_model and pid != killed and not interrupted:
            proc.send_signal(signal.SIGINT)
            interrupted = True
    proc.wait(timeout=300)
    log = "".join(lines)
    assert killed is not None and interrupted, log[-3000:]
    assert proc.returncode == 130 and "interrupted" in log and "--resume" in log, log[-3000:]
    # the killed trial came back in a new process from its checkpoint, not from epoch 1
    again_epochs = [
        int(e)
        for p, m, e in re.findall(r"run_trial pid=(\d+)\).*\[(DG\w+-tiny)\] epoch (\d)/8", log)
        if m == killed_model and int(p) != killed
    ]
    assert again_epochs and again_epochs[0] >= 2, again_epochs

    # the printed hint works as printed: the sweep's own overrides and tracking URI come from its record
    hint = re.search(r"with: python (-m vgs\.sweep smoke --resume --storage \S+)", log)
    assert hint, log[-3000:]
    again = subprocess.run(
        [sys.executable, *hint.group(1).split()], capture_output=True, text=True, cwd=tmp_path, env=env, timeout=600
    )
    assert again.returncode == 0, again.stdout[-2000:] + again.stderr[-4000:]
    # Ray's background copy of the trial folder no longer meets a checkpoint being renamed
    assert ".pt.tmp" not in log + again.stdout + again.stderr, (log + again.stderr)[-3000:]
    assert "with its recorded options" in again.stderr and "train.epochs" in again.stderr
    conflict = subprocess.run(
        cmd + ["--resume", "train.epochs=12"], capture_output=True, text=True, cwd=tmp_path, env=env, timeout=600
    )
    assert conflict.returncode == 2 and "differs" in conflict.stderr, conflict.stderr[-2000:]
    finished = subprocess.run(cmd + ["--resume"], capture_output=True, text=True, cwd=tmp_path, env=env, timeout=600)
    assert finished.returncode == 0 and "already finished" in finished.stderr, finished.stderr[-2000:]
    from mlflow.tracking import MlflowClient

    client = MlflowClient(f"sqlite:///{db}")
    exp = client.get_experiment_by_name("vgs-smoke")
    runs = client.search_runs([exp.experiment_id])
    assert len([r for r in runs if r.data.tags.get("vgs.kind") == "sweep"]) == 1
    trials = [r for r in runs if r.data.tags.get("vgs.kind") == "trial"]
    assert len(trials) == 1 and trials[0].info.status == "FINISHED", [r.data.tags for r in trials]
    for t in trials:
        steps = [h.step for h in client.get_metric_history(t.info.run_id, "val_s2i_r10")]
        # every epoch logged once: no trial trained its epochs twice (kill, interrupt, resume)
        assert sorted(steps) == list(range(1, int(t.data.tags["vgs.epochs_run"]) + 1)), steps
