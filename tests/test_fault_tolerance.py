"""Fault tolerance of a real sweep, in one run: a trial's worker process killed mid-training
resumes from its last checkpoint (Ray FailureConfig); then SIGTERM to the sweep's whole process
group (how Slurm cancels or preempts a job: Ray's own processes get it too) stops the sweep
gracefully with no run left RUNNING, and `--resume` continues it (Tuner.restore) with every trial
once in MLflow."""

import os
import re
import signal
import subprocess
import sys

import pytest


def one_trial_smoke_sweep(tmp_path, db, *extra: str) -> list[str]:
    """The smoke sweep with one trial on the session's smoke corpus, results and MLflow per test."""
    return [
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
        "train.captions_per_image=0",
        "data.builtin_images=80",
        *extra,
    ]


@pytest.mark.slow
def test_killed_worker_and_interrupted_driver_both_resume(tmp_path, vgs_home):
    env = {**os.environ, "VGS_HOME": str(vgs_home), "RAY_DEDUP_LOGS": "0"}  # the session's smoke corpus
    env.pop("RAY_ADDRESS", None)
    db = tmp_path / "mlflow.db"
    cmd = one_trial_smoke_sweep(
        tmp_path, db, "train.epochs=8", "--verbose"
    )  # one trial: ASHA never prunes it, so it must come back
    # (--verbose: the trial's own output, with its worker's pid, reaches the driver)
    proc = subprocess.Popen(
        cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, cwd=tmp_path, env=env, start_new_session=True
    )
    # Progress lines carry the trial worker's pid: "(run_trial pid=123) [DG1A128-tiny] epoch 2/8 ...".
    # At a trial's epoch 2 (checkpointed), SIGKILL its process: nothing gets to clean up. Once that
    # trial reports again from a new process, SIGTERM the whole process group.
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
            os.killpg(proc.pid, signal.SIGTERM)
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
    from mlflow.tracking import MlflowClient

    client = MlflowClient(f"sqlite:///{db}")
    exp = client.get_experiment_by_name("vgs-smoke")
    stopped = {r.data.tags.get("vgs.kind"): r.info.status for r in client.search_runs([exp.experiment_id])}
    assert stopped == {"sweep": "KILLED", "trial": "KILLED"}, stopped  # nothing RUNNING after the interrupt

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
    runs = client.search_runs([exp.experiment_id])
    parents = [r for r in runs if r.data.tags.get("vgs.kind") == "sweep"]
    assert len(parents) == 1 and parents[0].info.status == "FINISHED", [r.info for r in parents]
    assert "vgs.stopped" not in parents[0].data.tags  # the interrupt no longer describes it
    trials = [r for r in runs if r.data.tags.get("vgs.kind") == "trial"]
    assert len(trials) == 1 and trials[0].info.status == "FINISHED", [r.data.tags for r in trials]
    for t in trials:
        steps = [h.step for h in client.get_metric_history(t.info.run_id, "val_s2i_r10")]
        # every epoch logged once: no trial trained its epochs twice (kill, interrupt, resume)
        assert sorted(steps) == list(range(1, int(t.data.tags["vgs.epochs_run"]) + 1)), steps


@pytest.mark.slow
def test_trials_killed_for_memory_cost_those_trials_not_the_sweep(tmp_path, vgs_home):
    """Ray's out-of-memory monitor killing the trial workers (here by a threshold no node stays
    under) fails those trials, each with one line naming the kill; the driver ends with its summary,
    not Ray's forty-line reports, and no run is left RUNNING."""
    env = {**os.environ, "VGS_HOME": str(vgs_home), "RAY_memory_usage_threshold": "0.001"}
    env.pop("RAY_ADDRESS", None)
    db = tmp_path / "mlflow.db"
    cmd = one_trial_smoke_sweep(tmp_path, db, "train.epochs=1")
    run = subprocess.run(cmd, capture_output=True, text=True, cwd=tmp_path, env=env, timeout=600)
    out = run.stdout + run.stderr
    assert run.returncode == 1 and "no trial completed" in out, out[-3000:]
    assert "failed: killed by Ray's out-of-memory monitor" in out, out[-3000:]
    assert "Traceback" not in out and "Top 10 memory users" not in out, out[-3000:]
    from mlflow.tracking import MlflowClient

    client = MlflowClient(f"sqlite:///{db}")
    runs = client.search_runs([client.get_experiment_by_name("vgs-smoke").experiment_id])
    trials = [r for r in runs if r.data.tags.get("vgs.kind") == "trial"]
    assert trials and all(r.info.status == "FAILED" for r in trials), [r.info.status for r in runs]
    assert all(r.data.tags["vgs.error"].startswith("killed by Ray's out-of-memory monitor") for r in trials)
    assert all(r.info.status != "RUNNING" for r in runs)
