"""Every named sweep YAML validates, and each paper sweep and the front-end sweep run one or two of their
cells at smoke size (built-in corpus of 80 images, one epoch, one seed) through Ray Tune into MLflow."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import share_builtin_corpora

from vgs.search_spaces.spec import available, load

PAPER_SWEEPS = [
    "downsampling",
    "gru_layers_asr",
    "gru_layers_higy2020",
    "gru_layers_slt",
    "hidden_size",
    "hidden_size_asr",
    "latent_dim",
    "pipeline_vs_mtl",
    "schedulers",
    "sharing",
]


def test_every_sweep_yaml_validates_and_has_the_papers_cells():
    names = available()
    assert set(PAPER_SWEEPS) <= set(names)
    for name in names:
        load(name)  # validation builds every sampled combination on the meta device
    assert len(load("pipeline_vs_mtl").space["variant.model"]["choice"]) == 18  # 6 models x 3 conditions
    assert len(load("gru_layers_higy2020").space["variant.component"]["choice"]) == 3 + 12 + 6  # Table 4
    assert len(load("sharing").space["variant.row"]["choice"]) == 13  # Chrupała 2019 Table 1
    assert load("latent_dim").space["variant.pair"]["choice"] == [
        "DG2A1024",
        "DG2A2048",
        "DG3A1024",
        "DG4A1024",
        "DG4A2048",
    ]


@pytest.mark.slow
def test_every_sweep_runs_at_smoke_size(tmp_path, test_corpora):
    env = {**os.environ, "VGS_HOME": str(share_builtin_corpora(tmp_path / "home", test_corpora))}
    env.pop("RAY_ADDRESS", None)
    script = Path(__file__).with_name("sweep_smoke_all.py")
    # two halves at once (single-trial sweeps would leave a core idle), each with its own local Ray
    # and MLflow database, and one VGS_HOME: both start by building the same built-in corpus and
    # feature stores, which one of them does while the other waits (they had crashed on each
    # other's temporary files)
    procs = [
        subprocess.Popen(
            [sys.executable, str(script), str(tmp_path), str(part)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            cwd=tmp_path,
            env=env,
        )
        for part in (0, 1)
    ]
    outs = [p.communicate(timeout=1200) for p in procs]
    for p, (out, err) in zip(procs, outs):
        assert p.returncode == 0, out[-3000:] + err[-5000:]
    lines = [line for out, _ in outs for line in out.splitlines() if line.startswith("{")]
    results = {x["sweep"]: x for x in map(json.loads, lines)}
    assert set(results) == {*PAPER_SWEEPS, "frontends"}
    # two configurations with costs: the Pareto sets against size and speed
    assert results["frontends"]["pareto"] == ["encode_ms_per_s", "params_trainable"], results["frontends"]
    for res in results.values():
        assert res["trials"] >= 1 and set(res["status"]) == {"completed"}, res
        assert all(isinstance(v, float) for v in res["values"]), res
    # the paper-style report of two of them, from MLflow
    uri = f"sqlite:///{tmp_path / 'mlflow-0.db'}"  # part 0 ran pipeline_vs_mtl, downsampling and schedulers

    def report_of(name: str, out: str) -> subprocess.CompletedProcess:
        cmd = [sys.executable, "-m", "vgs.results.report", name, "--tracking-uri", uri, "--out", str(tmp_path / out)]
        return subprocess.run(cmd, capture_output=True, text=True, cwd=tmp_path, env=env)

    rep = report_of("pipeline_vs_mtl", "rep")
    assert rep.returncode == 0, rep.stderr[-3000:]
    assert "| model | full (val_r10) | reduced (val_r10) | translations (val_r10) |" in rep.stdout
    pipe_seq = next(line for line in rep.stdout.splitlines() if line.startswith("| pipe-seq |"))
    assert "(n=1) · paper 0.345" in pipe_seq and "paper 0.642" in pipe_seq
    assert (tmp_path / "rep" / "metric_per_epoch.png").stat().st_size > 1000
    down = report_of("downsampling", "down")
    assert down.returncode == 0, down.stderr[-3000:]
    assert "| paper ASR WER (Table 9, val, beam 10) | 0.397 |" in down.stdout
    assert "No speech-only baseline" in down.stdout  # pipeline_vs_mtl ran pipe-seq alone here
    # Mortazavi 2020 §5.2: the training-set R@10 (train.eval_train_images) beside the paper's ranges
    sched = report_of("schedulers", "s")
    assert sched.returncode == 0, sched.stderr[-3000:]
    assert "training-set R@10 speech->image after the last epoch (Mortazavi 2020 §5.2" in sched.stdout
    row = next(line for line in sched.stdout.splitlines() if line.endswith("| 0.70 - 0.79 | 1 |"))
    assert row.startswith("| cyclic |") and 0 <= float(row.split("|")[2]) <= 1, row
    assert (tmp_path / "down" / "downsampling.png").exists()

    from mlflow.tracking import MlflowClient

    client = MlflowClient(uri)
    exp = client.get_experiment_by_name("vgs-pipeline_vs_mtl")
    parent = client.search_runs([exp.experiment_id], filter_string="tags.`vgs.kind` = 'sweep'")[0]
    assert {a.path for a in client.list_artifacts(parent.info.run_id, "report")} == {
        "report/report.md",
        "report/metric_per_epoch.png",
    }
    # the front-end sweep's parent run holds its recall-against-cost plot (it was missing while the
    # trials' costs were not logged to MLflow)
    fronts = MlflowClient(f"sqlite:///{tmp_path / 'mlflow-1.db'}")
    exp = fronts.get_experiment_by_name("vgs-frontends")
    parent = fronts.search_runs([exp.experiment_id], filter_string="tags.`vgs.kind` = 'sweep'")[0]
    plots = {a.path: a.file_size for a in fronts.list_artifacts(parent.info.run_id, "plots")}
    assert plots.get("plots/pareto.png", 0) > 1000, plots
