"""Synchronous successive halving (vgs.sweep.halving): its rules, and a real Ray sweep that pauses and
resumes trials."""

import itertools
import json
import math
import os
import re
import signal
import subprocess
import sys

import pytest

from vgs.sweep.halving import rungs, survivors


def test_rungs_are_grace_times_powers_of_the_factor_below_the_budget():
    assert rungs(9, 1, 3) == [1, 3]
    assert rungs(3, 1, 3) == [1]
    assert rungs(10, 1, 3) == [1, 3, 9]  # survivors of 9 run on to 10
    assert rungs(4, 1, 2) == [1, 2]
    assert rungs(20, 3, 2) == [3, 6, 12]
    assert rungs(2, 3, 3) == []  # the grace period is the whole budget: nothing to halve


def test_survivors_are_the_best_fraction_rounded_up_against_every_ordering():
    scores = {"a": 0.30, "b": 0.10, "c": 0.25, "d": 0.40, "e": 0.05, "f": 0.20}
    for rf in (2, 3, 4, 10):
        keep = math.ceil(len(scores) / rf)
        # the obvious reference: the subset of that size whose worst member beats every excluded one
        best = next(
            set(s)
            for s in itertools.combinations(scores, keep)
            if min(scores[x] for x in s) > max((scores[y] for y in scores if y not in s), default=-1)
        )
        assert set(survivors(scores, rf, +1)) == best
    assert survivors(scores, 3, +1) == ["d", "a"]
    assert survivors(scores, 3, -1) == ["e", "b"]  # mode min keeps the lowest
    assert survivors({"a": 0.5}, 3, +1) == ["a"]  # at least one goes on


HALVING_SWEEP = """
description: four configurations; --scheduler halving keeps the YAML's rungs, epochs 1 and 2 of 3
base: cpu-tiny
overrides: {data.builtin_images: 80, data.builtin_val: 30, data.builtin_test: 8, train.epochs: 3, train.batch_size: 16}
space:
  model.speech.layers: {choice: [1, 2]}
  model.latent: {choice: [32, 64]}
search: {algorithm: grid}
scheduler: {type: asha, grace_period: 1, reduction_factor: 2}
metric: val_s2i_r10
mode: max
seeds: [0]
resources: {cpu: 1, gpu: 0}
max_concurrent: 2
"""


def sweep_command(tmp_path) -> tuple[list[str], dict]:
    (tmp_path / "halving.yaml").write_text(HALVING_SWEEP)
    env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}
    return [
        sys.executable,
        "-m",
        "vgs.sweep",
        str(tmp_path / "halving.yaml"),
        "--scheduler",
        "halving",
        "--storage",
        str(tmp_path / "ray"),
        "--tracking-uri",
        f"sqlite:///{tmp_path / 'mlflow.db'}",
    ], env


def check_halved(tmp_path) -> None:
    """4 configurations to epoch 1, the best 2 to epoch 2, the best 1 to epoch 3, each epoch once in MLflow."""
    summary = json.loads(next((tmp_path / "ray").glob("halving_*/summary.json")).read_text())
    assert sorted(t["epochs"] for t in summary["trials"]) == [1, 1, 2, 3]
    assert summary["compute"]["trial_epochs"] == 7  # not the grid's 12

    from mlflow.tracking import MlflowClient

    client = MlflowClient(f"sqlite:///{tmp_path / 'mlflow.db'}")
    exp = client.get_experiment_by_name("vgs-halving")
    trials = [x for x in client.search_runs([exp.experiment_id]) if x.data.tags.get("vgs.kind") == "trial"]
    assert len(trials) == 4  # a paused and resumed trial keeps its one MLflow run
    steps = {
        t.info.run_id: sorted(m.step for m in client.get_metric_history(t.info.run_id, "val_s2i_r10")) for t in trials
    }
    assert sorted(steps.values()) == [[1], [1], [1, 2], [1, 2, 3]]  # one value per epoch, none trained twice
    history = {
        t.info.run_id: [
            m.value for m in sorted(client.get_metric_history(t.info.run_id, "val_s2i_r10"), key=lambda m: m.step)
        ]
        for t in trials
    }
    # each rung kept the best at that epoch: nobody stopped there scored above anyone who went on
    for epoch, kept in ((1, 2), (2, 1)):
        at = sorted((h[epoch - 1], len(h) > epoch) for h in history.values() if len(h) >= epoch)
        went_on = [score for score, on in at if on]
        stopped = [score for score, on in at if not on]
        assert len(went_on) == kept and max(stopped) <= min(went_on), (epoch, at)


@pytest.mark.slow
def test_a_halving_sweep_pauses_every_trial_at_a_rung_and_continues_the_best(tmp_path, vgs_home):
    cmd, env = sweep_command(tmp_path)
    r = subprocess.run(cmd, capture_output=True, text=True, cwd=tmp_path, env=env, timeout=600)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    assert "halving at epoch 1: the best 2 of 4 configurations go on to epoch 2" in r.stderr
    assert "halving at epoch 2: the best 1 of 2 configurations go on to the full budget" in r.stderr
    check_halved(tmp_path)


@pytest.mark.slow
def test_a_halving_sweep_interrupted_while_trials_wait_at_a_rung_resumes_where_it_was(tmp_path, vgs_home):
    cmd, env = sweep_command(tmp_path)
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, cwd=tmp_path, env=env)
    lines, at_epoch_1 = [], set()
    for line in proc.stdout:  # Ctrl-C once two trials have reached the first rung and wait there
        lines.append(line)
        m = re.search(r"\[(.+)\] epoch 1/3", line)
        if m:
            at_epoch_1.add(m.group(1))
            if len(at_epoch_1) == 2:
                proc.send_signal(signal.SIGINT)
                break
    lines += proc.stdout.readlines()
    proc.wait(timeout=300)
    log = "".join(lines)
    assert proc.returncode == 130 and "--resume" in log, log[-3000:]
    state = json.loads(next((tmp_path / "ray").glob("halving_*/halving.json")).read_text())
    assert state["stage"] == 0 and state["at_rung"], state  # the trials waiting at the rung, and their scores

    again = subprocess.run(cmd + ["--resume"], capture_output=True, text=True, cwd=tmp_path, env=env, timeout=600)
    assert again.returncode == 0, again.stdout[-3000:] + again.stderr[-3000:]
    assert "halving at epoch 1: the best 2 of 4 configurations go on to epoch 2" in again.stderr
    assert "halving at epoch 2: the best 1 of 2 configurations go on to the full budget" in again.stderr
    summary = json.loads(next((tmp_path / "ray").glob("halving_*/summary.json")).read_text())
    # A trial that waited at the rung may train one epoch past it after the restore (Tune restarts
    # every unfinished trial), and if it goes on it may so finish before the next rung stops it.
    assert [t["epochs"] for t in summary["trials"]].count(3) in (1, 2)
    assert 7 <= summary["compute"]["trial_epochs"] <= 7 + 2 * len(state["at_rung"])

    from mlflow.tracking import MlflowClient

    client = MlflowClient(f"sqlite:///{tmp_path / 'mlflow.db'}")
    exp = client.get_experiment_by_name("vgs-halving")
    trials = [x for x in client.search_runs([exp.experiment_id]) if x.data.tags.get("vgs.kind") == "trial"]
    assert len(trials) == 4
    first = {}
    for t in trials:
        history = sorted(client.get_metric_history(t.info.run_id, "val_s2i_r10"), key=lambda m: m.step)
        assert [m.step for m in history] == list(range(1, len(history) + 1))  # none logged twice
        first[t.data.tags["vgs.trial_id"]] = history[0].value
    # the scores that waited at the rung across the restart are the trials' epoch-1 scores
    assert {tid: round(v, 6) for tid, v in state["at_rung"].items()} == {
        tid: round(first[tid], 6) for tid in state["at_rung"]
    }
