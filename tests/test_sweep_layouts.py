"""`python -m vgs.sweep gru_layers --data PATH` through the CLI on the real Flickr8K slice
(flickr1d, real speech).  Places and SpokenCOCO go through the same prepare() and train end to
end in test_corpora.py (a sweep per layout here cost ~40 s each of the CI budget)."""

import os
import subprocess
import sys

import pytest


def sweep_on(tmp_path, data, *overrides):
    env = {**os.environ, "VGS_HOME": str(tmp_path / "home")}
    env.pop("RAY_ADDRESS", None)
    cmd = [
        sys.executable,
        "-m",
        "vgs.sweep",
        "gru_layers",
        "--data",
        str(data),
        "--samples",
        "2",
        "--confirm",
        "0",  # the confirmation phase is covered in test_sweep; CI's budget
        "--storage",
        str(tmp_path / "ray"),
        "--tracking-uri",
        f"sqlite:///{tmp_path / 'mlflow.db'}",
        "train.epochs=2",
        "train.test_at_end=false",
        *overrides,
    ]
    return subprocess.run(cmd, capture_output=True, text=True, cwd=tmp_path, env=env, timeout=900)


@pytest.mark.slow
def test_gru_layers_sweep_runs_on_real_flickr8k_recordings(flickr1d, tmp_path):
    root, images = flickr1d
    r = sweep_on(tmp_path, root, f"data.image_dir={images}", "train.batch_size=4")  # 6 training images
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    assert "2 trials" in r.stdout and "best trial" in r.stdout
    assert r.stdout.rstrip().splitlines()[-1].startswith("verdict: ")

    from mlflow.tracking import MlflowClient

    client = MlflowClient(f"sqlite:///{tmp_path / 'mlflow.db'}")
    runs = client.search_runs([client.get_experiment_by_name("vgs-gru_layers").experiment_id])
    parent = next(x for x in runs if x.data.tags.get("vgs.kind") == "sweep")
    assert parent.data.params["data.root"] == str(root.resolve())
    assert len([x for x in runs if x.data.tags.get("vgs.kind") == "trial"]) == 2
