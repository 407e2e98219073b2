"""The smoke sweep end to end: Ray Tune + Optuna + ASHA in real processes, MLflow on SQLite."""
import os
import subprocess
import sys

import pytest



def run_sweep(tmp_path, *extra):
    env = {**os.environ, "VGS_HOME": str(tmp_path / "home"), "RAY_ADDRESS": ""}
    env.pop("RAY_ADDRESS")
    # a quote in the results folder's name (it once broke an MLflow filter)
    cmd = [sys.executable, "-m", "vgs.sweep", "smoke", "--storage", str(tmp_path / "ray's"),
           "--tracking-uri", f"sqlite:///{tmp_path / 'mlflow.db'}", *extra]
    return subprocess.run(cmd, capture_output=True, text=True, cwd=tmp_path, env=env, timeout=600)


@pytest.mark.slow
def test_smoke_sweep_lands_runs_metrics_and_checkpoints_in_mlflow(tmp_path):
    r = run_sweep(tmp_path)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    assert "best trial" in r.stdout and "ui --backend-store-uri sqlite:///" in r.stdout
    assert "| val s2i R@10 |" in r.stdout
    assert "repeated" not in r.stdout + r.stderr and "epoch 1/2" in r.stdout + r.stderr  # no line folded by Ray
    last = r.stdout.strip().splitlines()[-1]  # one seed: the verdict says it cannot tell
    assert last.startswith("verdict: ") and ("seed noise unknown" in last or "only one configuration" in last), last

    from mlflow.tracking import MlflowClient

    client = MlflowClient(f"sqlite:///{tmp_path / 'mlflow.db'}")
    exp = client.get_experiment_by_name("vgs-smoke")
    runs = client.search_runs([exp.experiment_id])
    parents = [x for x in runs if x.data.tags.get("vgs.kind") == "sweep"]
    trials = [x for x in runs if x.data.tags.get("vgs.kind") == "trial"]
    assert len(parents) == 1 and len(trials) == 2
    parent = parents[0]
    assert parent.info.status == "FINISHED"
    assert "best_val_s2i_r10" in parent.data.metrics and "vgs.verdict" in parent.data.tags
    assert {a.path for a in client.list_artifacts(parent.info.run_id)} >= {"summary.md", "best_trial.json"}
    # child runs are named by what varies and the parent points at the best one
    assert {t.info.run_name for t in trials} <= {"layers=1 s0", "layers=2 s0"}
    assert parent.data.tags["vgs.best_run_id"] in {t.info.run_id for t in trials}
    for t in trials:
        assert t.data.tags["mlflow.parentRunId"] == parent.info.run_id
        assert t.data.params["model.speech.layers"] in ("1", "2")
        assert t.data.params["train.epochs"] == "2"
        history = client.get_metric_history(t.info.run_id, "val_s2i_r10")
        epochs = int(t.data.tags["vgs.epochs_run"])
        assert [m.step for m in history] == list(range(1, epochs + 1))
        assert all(0.0 <= m.value <= 1.0 for m in history)
        pruned = t.data.tags["vgs.pruned"] == "true"
        assert t.info.status == ("KILLED" if pruned else "FINISHED")
        assert [a.path for a in client.list_artifacts(t.info.run_id, "checkpoint")] == ["checkpoint/best.pt"]
    # artifacts sit beside the SQLite database, never in the folder the command ran from
    assert (tmp_path / "mlartifacts" / "vgs-smoke").is_dir() and not (tmp_path / "mlruns").exists()

    # Resuming a finished sweep continues the same MLflow runs: nothing is duplicated.
    again = run_sweep(tmp_path, "--resume")
    assert again.returncode == 0, again.stdout[-3000:] + again.stderr[-3000:]
    assert "already finished" in again.stderr and again.stdout.strip().splitlines()[-1] == last
    assert len(client.search_runs([exp.experiment_id])) == 3


def test_bad_override_is_refused_before_ray_starts(tmp_path):
    r = run_sweep(tmp_path, "model.speech.layerz=2")
    assert r.returncode == 2 and "unknown config key 'model.speech.layerz'" in r.stderr
    r = run_sweep(tmp_path, "train.batch_size=0")
    assert r.returncode == 2 and "train.batch_size must be >= 1, got 0" in r.stderr, r.stderr[-2000:]
    assert "Traceback" not in r.stderr and "Started a local Ray instance" not in r.stderr
    r = run_sweep(tmp_path, "train.device=cuda")  # every trial would fail: Ray gives them no GPU
    assert r.returncode == 2 and "--resources gpu=1" in r.stderr, r.stderr[-2000:]


def test_gpu_sweep_on_a_machine_without_gpus_is_refused_with_the_fix(tmp_path):
    env = {**os.environ, "VGS_HOME": str(tmp_path / "home")}
    env.pop("RAY_ADDRESS", None)
    cmd = [sys.executable, "-m", "vgs.sweep", "latent_dim", "--storage", str(tmp_path / "ray"),
           "--tracking-uri", f"sqlite:///{tmp_path / 'mlflow.db'}", "data.builtin_images=80"]
    r = subprocess.run(cmd, capture_output=True, text=True, cwd=tmp_path, env=env, timeout=600)
    assert r.returncode == 2 and "asks for 4 CPU and 1 GPU per trial" in r.stderr and "--resources" in r.stderr


@pytest.mark.slow
def test_confirmation_phase_states_the_verdict_and_resumes_without_duplicates(tmp_path):
    r = run_sweep(tmp_path, "--confirm", "2")
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    last = r.stdout.strip().splitlines()[-1]
    assert last.startswith("verdict: ") and "beyond seed noise" in last and "(n=2)" in last, last
    assert "per configuration (val_s2i_r10, full-budget trials)" in r.stdout

    import json
    from pathlib import Path

    from mlflow.tracking import MlflowClient

    summary = json.loads(next(Path(tmp_path / "ray's").glob("smoke_*/summary.json")).read_text())
    assert [len(c["values"]) for c in summary["configs"]] == [2, 2]  # both configurations, two seeds each
    assert summary["verdict"] in last
    full = [(json.dumps({k: v for k, v in t["config"].items()}, sort_keys=True)) for t in summary["trials"]
            if t["status"] == "completed"]
    assert len(full) == len(set(full)) == 4  # each (configuration, seed) ran its full budget once
    assert any(t["phase"] == "confirm" for t in summary["trials"])

    client = MlflowClient(f"sqlite:///{tmp_path / 'mlflow.db'}")
    exp = client.get_experiment_by_name("vgs-smoke")
    runs = client.search_runs([exp.experiment_id])
    parent = next(x for x in runs if x.data.tags.get("vgs.kind") == "sweep")
    assert parent.data.tags["vgs.verdict"] == summary["verdict"]
    assert parent.data.metrics["best_val_s2i_r10"] == summary["best"]["val_s2i_r10"]
    trials = [x for x in runs if x.data.tags.get("vgs.kind") == "trial"]
    assert len(trials) == len(summary["trials"])  # both phases under the one parent
    best_run = client.get_run(parent.data.tags["vgs.best_run_id"])
    assert best_run.data.tags["vgs.trial_id"] == summary["best"]["trial_id"]
    assert sorted(t.info.run_name for t in trials).count("layers=1 s1") == 1  # a confirming seed's run

    again = run_sweep(tmp_path, "--confirm", "2", "--resume")
    assert again.returncode == 0 and "already finished" in again.stderr, again.stdout[-3000:] + again.stderr[-3000:]
    assert len(client.search_runs([exp.experiment_id])) == len(runs)


def test_resume_takes_the_recorded_options_and_refuses_a_conflicting_one(tmp_path):
    import json

    from vgs.config import ConfigError
    from vgs.sweep import SweepOptions, resumed_options

    folder = tmp_path / "smoke_20260101-000000"
    folder.mkdir()
    (folder / "tuner.pkl").write_text("x")
    recorded = {"name": "smoke", "data": "/corpus", "storage": None, "tracking_uri": "sqlite:////db", "resume": False,
                "overrides": {"train.epochs": "12"}, "address": None, "samples": None, "picks": {}, "seeds": [0, 1],
                "resources": {}, "confirm": None}
    (folder / "options.json").write_text(json.dumps(recorded))
    name, opts = resumed_options(SweepOptions("smoke", resume=True), str(tmp_path), "smoke")
    assert name == folder.name and opts.resume and opts.data == "/corpus" and opts.seeds == [0, 1]
    assert opts.overrides == {"train.epochs": "12"} and opts.tracking_uri == "sqlite:////db"
    same = SweepOptions("smoke", resume=True, overrides={"train.epochs": "12"}, data="/corpus")
    assert resumed_options(same, str(tmp_path), "smoke")[1].overrides == {"train.epochs": "12"}
    with pytest.raises(ConfigError, match="key=value overrides differs"):
        resumed_options(SweepOptions("smoke", resume=True, overrides={"train.epochs": "3"}), str(tmp_path), "smoke")
    with pytest.raises(ConfigError, match="--tracking-uri differs"):
        resumed_options(SweepOptions("smoke", resume=True, tracking_uri="sqlite:////other"), str(tmp_path), "smoke")
    with pytest.raises(ConfigError, match="no earlier 'gru_layers' sweep"):
        resumed_options(SweepOptions("gru_layers", resume=True), str(tmp_path), "gru_layers")
