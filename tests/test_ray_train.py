"""A 2-worker trial (Ray Train TorchTrainer inside the Tune trial, DDP over gloo) inside a real
sweep takes the same steps as one worker with the same global batch.  Results go to a storage URI
(file://, the code path of s3:// and gs://)."""

import os
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import pytest

from vgs.config import apply_overrides, base_config
from vgs.data.flickr8k import read_flickr8k


@pytest.mark.slow
def test_two_worker_trial_matches_one_worker(tiny_corpus, vgs_home, tmp_path, margin):
    # Precomputed image features (a linear image side): DenseNet's batch norm on CPU sees each
    # worker's half batch (SyncBatchNorm is GPU-only), everything else is exactly data parallel.
    names = sorted({u.image for u in read_flickr8k(tiny_corpus).utterances})
    feats = tmp_path / "feats.npz"
    np.savez(
        feats,
        names=np.array(names),
        features=np.random.default_rng(0).standard_normal((len(names), 64)).astype(np.float32),
    )
    overrides = {
        "data.root": str(tiny_corpus),
        "data.image_features": str(feats),
        "train.epochs": "2",
        "train.batch_size": "16",
        "model.speech.layers": "1",
    }
    db = tmp_path / "mlflow.db"
    env = {**os.environ, "VGS_HOME": str(vgs_home)}
    env.pop("RAY_ADDRESS", None)
    run = subprocess.run(
        [
            sys.executable,
            "-m",
            "vgs.sweep",
            "smoke",
            "--samples",
            "1",
            "--resources",
            "workers=2",
            "--verbose",
            "--pick",
            "model.speech.layers=1",
            "--storage",
            f"file://{tmp_path / 'ray'}",
            "--tracking-uri",
            f"sqlite:///{db}",
            *(f"{k}={v}" for k, v in overrides.items() if k != "model.speech.layers"),
        ],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env=env,
        timeout=400,
    )
    assert run.returncode == 0, run.stdout[-2000:] + run.stderr[-4000:]
    assert "world_size=2" in run.stderr  # Ray Train set up a 2-rank process group (its own log: --verbose)
    sweep_dir = next((tmp_path / "ray").glob("smoke_*"))
    assert (sweep_dir / "summary.json").exists() and list(sweep_dir.glob("train-*/checkpoint_*/last.pt"))
    # each rank's scratch folder is gone with its trial (they were left in the temp folder)
    runs_of_ranks = [p.name for p in sweep_dir.glob("train-*")]
    left = [p for name in runs_of_ranks for p in Path(tempfile.gettempdir()).glob(f"vgs-{name}-rank*")]
    assert runs_of_ranks and not left, left

    from mlflow.tracking import MlflowClient

    client = MlflowClient(f"sqlite:///{db}")
    runs = client.search_runs([client.get_experiment_by_name("vgs-smoke").experiment_id])
    parent = next(r for r in runs if r.data.tags.get("vgs.kind") == "sweep")
    assert parent.data.params["workers_per_trial"] == "2"
    trial = next(r for r in runs if r.data.tags.get("vgs.kind") == "trial")
    losses = [h.value for h in sorted(client.get_metric_history(trial.info.run_id, "train_loss"), key=lambda h: h.step)]
    r10 = [h.value for h in sorted(client.get_metric_history(trial.info.run_id, "val_s2i_r10"), key=lambda h: h.step)]
    assert len(losses) == 2
    assert any(a.path == "checkpoint" for a in client.list_artifacts(trial.info.run_id))  # rank 0's best.pt

    from vgs.train import fit

    history = []
    fit(
        apply_overrides(base_config("cpu-tiny"), overrides),
        report=lambda m, _: history.append(m),
        out_dir=tmp_path / "one",
    )
    one_worker = [m["train_loss"] for m in history]
    margin.at_most("train loss, 2 workers vs 1 (largest relative difference)", max_relative(losses, one_worker), 1e-4)
    r10_one = [m["val_s2i_r10"] for m in history]
    margin.at_most("val s2i R@10, 2 workers vs 1 (largest difference)", max(map(abs, np.subtract(r10, r10_one))), 0.03)


def max_relative(a: list[float], b: list[float]) -> float:
    assert len(a) == len(b)
    return max(abs(x - y) / abs(y) for x, y in zip(a, b))
