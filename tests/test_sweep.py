"""The smoke sweep end to end: Ray Tune + Optuna + ASHA in real processes, MLflow on SQLite."""

import os
import subprocess
import sys
import tempfile

import pytest


def run_sweep(tmp_path, *extra):
    # the session's VGS_HOME (conftest's vgs_home): the smoke corpus and its stores are built once
    # for every test that sweeps it; results and MLflow stay per test
    env = {**os.environ, "RAY_ADDRESS": ""}
    env.pop("RAY_ADDRESS")
    # a quote in the results folder's name (it once broke an MLflow filter)
    cmd = [
        sys.executable,
        "-m",
        "vgs.sweep",
        "smoke",
        "--storage",
        str(tmp_path / "ray's"),
        "--tracking-uri",
        f"sqlite:///{tmp_path / 'mlflow.db'}",
        *extra,
    ]
    return subprocess.run(cmd, capture_output=True, text=True, cwd=tmp_path, env=env, timeout=600)


@pytest.mark.slow
def test_smoke_sweep_lands_runs_metrics_and_checkpoints_in_mlflow(tmp_path, vgs_home):
    # one real sweep for both halves of this test (CI's budget): the search, then the confirmation phase
    # train.test_every_epoch: Mortazavi 2020 Fig. 2's test R@10 after every epoch, drawn by the sweep
    r = run_sweep(tmp_path, "--register", "smoke-best", "--confirm", "2", "train.test_every_epoch=true")
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    assert "best trial" in r.stdout and "ui --backend-store-uri sqlite:///" in r.stdout
    assert "/#/experiments/" in r.stdout and "?workflowType=machine_learning" in r.stdout  # the runs table
    assert "| val s2i R@10 |" in r.stdout
    assert "repeated" not in r.stdout + r.stderr and "epoch 1/2" in r.stdout + r.stderr  # no line folded by Ray
    # issue 36 #17: MLflow's own "View run ... at:" line per run (with emoji) and download progress bars
    assert "View run" not in r.stdout + r.stderr and "Downloading artifacts" not in r.stdout + r.stderr
    last = r.stdout.strip().splitlines()[-1]
    assert last.startswith("verdict: ") and "Welch t-test p = " in last and "95% CI [" in last, last
    assert "(n=2)" in last and "best group: " in last, last
    assert "per configuration (val_s2i_r10, full-budget trials)" in r.stdout

    from mlflow.tracking import MlflowClient

    client = MlflowClient(f"sqlite:///{tmp_path / 'mlflow.db'}")
    exp = client.get_experiment_by_name("vgs-smoke")
    runs = client.search_runs([exp.experiment_id])
    parents = [x for x in runs if x.data.tags.get("vgs.kind") == "sweep"]
    trials = [x for x in runs if x.data.tags.get("vgs.kind") == "trial"]
    assert len(parents) == 1 and len(trials) == 4  # 2 searched + 2 confirming (seed 1)
    parent = parents[0]
    assert parent.info.status == "FINISHED"
    # issue 37: the run explains itself (Description: verdict, link to the best trial's run, table),
    # the experiment opens in the model-training view, and the environment that produced it is named
    note = parent.data.tags["mlflow.note.content"]
    best_link = f"/runs/{parent.data.tags['vgs.best_run_id']}?workflowType=machine_learning)"
    assert note.startswith("**verdict:** ") and best_link in note
    assert "| val s2i R@10 |" in note
    assert exp.tags["mlflow.experimentKind"] == "custom_model_development"
    from vgs.environment import environment_hash

    assert parent.data.tags["vgs.env.env_hash"] == environment_hash() and parent.data.tags["vgs.env.torch"]
    assert f"environment: env {environment_hash()} (torch " in r.stdout
    parent_link = f"#/experiments/{exp.experiment_id}/runs/{parent.info.run_id}?workflowType=machine_learning"
    assert f"parent run: http://127.0.0.1:5000/{parent_link}" in r.stdout
    assert "best_val_s2i_r10" in parent.data.metrics and "vgs.verdict" in parent.data.tags
    assert {a.path for a in client.list_artifacts(parent.info.run_id)} >= {
        "summary.md",
        "best_trial.json",
        "search.json",
        "plots",
    }
    # the parent records the search and draws its plots without a manual step
    assert parent.data.params["search.sampler"] == "tpe" and parent.data.params["scheduler.grace_period"] == "1"
    # Optuna's settings stated, not the installed release's defaults (issue 37)
    assert parent.data.params["search.sampler.multivariate"] == "True"
    assert parent.data.params["search.sampler.constant_liar"] == "True"
    assert parent.data.params["search.sampler.n_startup_trials"] == "10"
    assert parent.data.params["space.model.speech.layers"] == "choice [1, 2]" and parent.data.params["mode"] == "max"
    assert "vgs.plot_error" not in parent.data.tags, parent.data.tags.get("vgs.plot_error")
    plots = {a.path for a in client.list_artifacts(parent.info.run_id, "plots")}
    assert "plots/metric_per_epoch.png" in plots and "plots/test_per_epoch.png" in plots, plots
    assert "sel_val_i2s_r10" in parent.data.metrics and "best_val_i2s_r10" not in parent.data.metrics
    commit = subprocess.run(
        ["git", "rev-parse", "HEAD"], capture_output=True, text=True, cwd=os.path.dirname(os.path.dirname(__file__))
    ).stdout.strip()
    # child runs are named by what varies and the parent points at the best one
    assert sorted(t.info.run_name for t in trials) == ["layers=1 s0", "layers=1 s1", "layers=2 s0", "layers=2 s1"]
    assert parent.data.tags["vgs.best_run_id"] in {t.info.run_id for t in trials}
    for t in trials:
        assert t.data.tags["mlflow.parentRunId"] == parent.info.run_id
        assert t.data.params["model.speech.layers"] in ("1", "2")
        assert t.data.params["train.epochs"] == "2" and t.data.params["train.seed"] in ("0", "1")
        assert t.data.tags.get("mlflow.source.git.commit") == (commit or None)  # MLflow's source convention
        assert "sel_val_i2s_r10" in t.data.metrics and "best_val_i2s_r10" not in t.data.metrics
        history = client.get_metric_history(t.info.run_id, "val_s2i_r10")
        epochs = int(t.data.tags["vgs.epochs_run"])
        assert [m.step for m in history] == list(range(1, epochs + 1))
        tested = client.get_metric_history(t.info.run_id, "epoch_test_s2i_r10")
        assert [m.step for m in tested] == list(range(1, epochs + 1))  # the test split every epoch
        assert all(0.0 <= m.value <= 1.0 for m in history)
        pruned = t.data.tags["vgs.pruned"] == "true"
        assert t.info.status == "FINISHED"  # pruning is no failure: the outcome tag tells them apart
        assert t.data.tags["vgs.outcome"] == ("pruned" if pruned else "completed")
        assert [a.path for a in client.list_artifacts(t.info.run_id, "checkpoint")] == ["checkpoint/best.pt"]
    # --register: the best trial's checkpoint is version 1 of the registered model
    assert "registered smoke-best version 1" in r.stdout
    version = client.get_model_version("smoke-best", "1")
    assert version.run_id == parent.data.tags["vgs.best_run_id"]
    # artifacts sit beside the SQLite database, never in the folder the command ran from
    assert (tmp_path / "mlartifacts" / "vgs-smoke").is_dir() and not (tmp_path / "mlruns").exists()

    # Resuming a finished sweep continues the same MLflow runs: nothing is duplicated.
    again = run_sweep(tmp_path, "--resume")
    assert again.returncode == 0, again.stdout[-3000:] + again.stderr[-3000:]
    assert "already finished" in again.stderr and again.stdout.strip().splitlines()[-1] == last
    assert len(client.search_runs([exp.experiment_id])) == 5

    # the confirmation phase: each configuration's two seeds, the verdict, one parent for both phases
    import json
    from pathlib import Path

    summary = json.loads(next(Path(tmp_path / "ray's").glob("smoke_*/summary.json")).read_text())
    assert [len(c["values"]) for c in summary["configs"]] == [2, 2]  # both configurations, two seeds each
    assert summary["verdict"] in last and parent.data.tags["vgs.verdict"] == summary["verdict"]
    # the verdict's p is scipy's Welch t-test on the two configurations' selected-epoch scores
    import numpy as np
    from scipy import stats

    from vgs.results.verdict import DIGITS  # the verdict tests the scores rounded to these digits

    first, second = ([round(v, DIGITS) for v in c["values"]] for c in summary["configs"])
    reference = stats.ttest_ind(first, second, equal_var=False).pvalue
    if np.isnan(reference):  # R@10 saturates at 1.0 on 8 validation images: no spread, no difference
        assert first == second and summary["test"]["p"] == 1.0
    else:
        assert summary["test"]["p"] == pytest.approx(reference, rel=1e-6)
    assert f"p = {summary['test']['p']:.3g}" in parent.data.tags["vgs.verdict"]
    full = [json.dumps(t["config"], sort_keys=True) for t in summary["trials"] if t["status"] == "completed"]
    assert len(full) == len(set(full)) == 4  # each (configuration, seed) ran its full budget once
    assert any(t["phase"] == "confirm" for t in summary["trials"]) and len(trials) == len(summary["trials"])
    assert parent.data.metrics["best_val_s2i_r10"] == summary["best"]["val_s2i_r10"]
    assert client.get_run(parent.data.tags["vgs.best_run_id"]).data.tags["vgs.trial_id"] == summary["best"]["trial_id"]
    # a trial's own last.pt/best.pt live in a scratch folder, removed at its end: in Ray's trial folder
    # they were copied to storage in the background (twice stored, and the copy raced their rename)
    stored = sorted(p.relative_to(tmp_path) for p in (tmp_path / "ray's").rglob("*.pt"))
    assert stored and all(p.parent.name.startswith("checkpoint_") for p in stored), stored
    ids = [t["trial_id"] for t in summary["trials"]]
    left = [p for i in ids for p in Path(tempfile.gettempdir()).glob(f"vgs-trial-{i}-*")]
    assert not left, left


def test_bad_override_is_refused_before_ray_starts(tmp_path, vgs_home, capsys):
    import ray

    from vgs.sweep.cli import main

    def refused(*extra) -> str:  # in this process: main() returns 2 with the message, Ray never starts
        assert (
            main(
                [
                    "smoke",
                    "--storage",
                    str(tmp_path / "ray"),
                    "--tracking-uri",
                    f"sqlite:///{tmp_path / 'mlflow.db'}",
                    *extra,
                ]
            )
            == 2
        )
        assert not ray.is_initialized()
        return capsys.readouterr().err

    assert "unknown config key 'model.speech.layerz'" in refused("model.speech.layerz=2")
    err = refused("train.batch_size=0")
    assert "train.batch_size must be >= 2" in err and "got 0" in err and "Traceback" not in err, err[-2000:]
    assert "--resources gpu=1" in refused("train.device=cuda")  # every trial would fail: Ray gives them no GPU


def test_gpu_sweep_on_a_machine_without_gpus_is_refused_with_the_fix(tmp_path):
    env = {**os.environ, "VGS_HOME": str(tmp_path / "home")}
    env.pop("RAY_ADDRESS", None)
    cmd = [
        sys.executable,
        "-m",
        "vgs.sweep",
        "latent_dim",
        "--size",
        "paper",
        "--storage",
        str(tmp_path / "ray"),
        "--tracking-uri",
        f"sqlite:///{tmp_path / 'mlflow.db'}",
        "--data",
        "builtin",  # --size paper trains on the built-in corpus only when it is named
        "data.builtin_images=80",
    ]
    r = subprocess.run(cmd, capture_output=True, text=True, cwd=tmp_path, env=env, timeout=600)
    assert r.returncode == 2 and "asks for 4 CPU and 1 GPU per trial" in r.stderr and "--resources" in r.stderr


def test_resume_takes_the_recorded_options_and_refuses_a_conflicting_one(tmp_path):
    import json

    from vgs.config import ConfigError
    from vgs.sweep.options import SweepOptions, resumed_options

    folder = tmp_path / "smoke_20260101-000000"
    folder.mkdir()
    (folder / "tuner.pkl").write_text("x")
    recorded = {
        "name": "smoke",
        "data": "/corpus",
        "storage": None,
        "tracking_uri": "sqlite:////db",
        "resume": False,
        "overrides": {"train.epochs": "12"},
        "address": None,
        "samples": None,
        "picks": {},
        "seeds": [0, 1],
        "resources": {},
        "confirm": None,
    }
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


def test_resume_refuses_a_search_space_edited_since_the_start_naming_the_keys(tmp_path):
    """Issue 36 #1: an edited YAML (train.epochs 2 -> 3) was resumed silently; trials already run at
    2 epochs were relabelled pruned and left the verdict."""
    import dataclasses
    import json

    from vgs.config import ConfigError, differing_keys
    from vgs.search_spaces.spec import find
    from vgs.sweep.options import OPTIONS_FILE, SPACE_FILE, SweepOptions, resumed_options

    space = tmp_path / "mine.yaml"
    space.write_text(find("smoke").read_text())
    folder = tmp_path / "ray" / "mine_20261204-101010"
    folder.mkdir(parents=True)
    (folder / "tuner.pkl").touch()
    (folder / OPTIONS_FILE).write_text(json.dumps(dataclasses.asdict(SweepOptions(str(space)))))
    (folder / SPACE_FILE).write_text(space.read_text())
    resume = SweepOptions(str(space), resume=True)
    assert resumed_options(resume, str(tmp_path / "ray"), "mine")[0] == folder.name  # unchanged: resumes
    space.write_text(space.read_text().replace("train.epochs: 2", "train.epochs: 3") + "alpha: 0.01\n")
    with pytest.raises(ConfigError) as refused:
        resumed_options(resume, str(tmp_path / "ray"), "mine")
    message = str(refused.value)
    assert "alpha, overrides.train.epochs differ" in message and str(folder / SPACE_FILE) in message, message
    assert "without --resume to start a new sweep" in message
    assert differing_keys({"a": {"b": [1, 2]}, "c": 1}, {"a": {"b": [1, 2, 2]}, "c": 1}) == ["a.b"]
    assert differing_keys([1], {"a": 1}) == ["(the whole document)"]


def test_dry_run_plans_every_cell_without_ray(tmp_path, vgs_home, smoke_corpus, capsys):
    import json

    import ray

    from vgs.sweep.cli import main

    args = ["smoke", "--storage", str(tmp_path / "ray"), "--tracking-uri", f"sqlite:///{tmp_path / 'mlflow.db'}"]
    assert main([*args, "--dry-run", "--json"]) == 0
    assert not ray.is_initialized() and not (tmp_path / "ray").exists()
    cells = json.loads(capsys.readouterr().out)
    assert [c["config"]["model.speech.layers"] for c in cells] == [1, 2]
    assert all(c["config"]["train.epochs"] == 2 and c["config"]["data.builtin_images"] == 80 for c in cells)
    # 80 images: 64 train x 5 captions, batch 16, one caption per image per epoch (cpu-tiny) -> 4
    assert [c["batches_per_epoch"] for c in cells] == [{"s2i": 4}, {"s2i": 4}]
    assert cells[1]["parameters"] > cells[0]["parameters"] > 0
    assert main([*args, "--dry-run", "train.epochs=3"]) == 0
    text = capsys.readouterr().out
    assert "at most 6 trial-epochs" in text, text


def test_a_dry_run_that_must_build_the_stores_says_so_on_stderr_and_keeps_stdout_the_plan(tmp_path):
    # at Places size building takes hours: a silent dry run looked hung
    env = {**os.environ, "VGS_HOME": str(tmp_path / "home")}
    env.pop("RAY_ADDRESS", None)
    run = subprocess.run(
        [sys.executable, "-m", "vgs.sweep", "smoke", "--dry-run", "--json", "data.builtin_images=20"],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
        timeout=300,
    )
    assert run.returncode == 0, run.stderr[-3000:]
    import json

    assert len(json.loads(run.stdout)) == 2
    assert "mortazavi store of vgs-builtin (100 utterances, about" in run.stderr
    assert "speech store: 100 utterances" in run.stderr


def test_dry_run_shows_multitask_speech_batches_constant_across_text_fractions(tiny_corpus, tmp_path):
    from vgs.search_spaces.spec import load
    from vgs.sweep.dry_run import plan_sweep
    from vgs.sweep.options import trial_base

    yaml = tmp_path / "down.yaml"
    yaml.write_text(
        "base: cpu-text\nvariants:\n  model:\n    mtl-transcribe: {model.family: mtl-transcribe}\n"
        "    text-image: {model.family: text-image}\n"
        "space:\n  data.text_fraction: {choice: [1.0, 0.1]}\nsearch: {algorithm: grid}\n"
        "metric: val_r10\nseeds: [0]\n"
    )
    spec = load(str(yaml))
    plan = plan_sweep(spec, trial_base(spec, {"data.root": str(tiny_corpus)}))
    by = {
        (c["config"]["model.family"], c["config"]["data.text_fraction"]): c["batches_per_epoch"] for c in plan["cells"]
    }
    assert by[("mtl-transcribe", 1.0)]["s2i"] == by[("mtl-transcribe", 0.1)]["s2i"] > 0
    assert by[("mtl-transcribe", 0.1)]["asr"] == by[("mtl-transcribe", 0.1)]["s2i"]  # the text cycles
    assert by[("text-image", 0.1)]["t2i"] < by[("text-image", 1.0)]["t2i"]


def test_base_option_runs_a_sweep_at_another_size(tiny_corpus, tmp_path):
    import numpy as np

    from vgs.data.flickr8k import read_flickr8k
    from vgs.sweep.dry_run import plan_sweep
    from vgs.sweep.options import SweepOptions, resolved_sweep

    names = sorted({u.image for u in read_flickr8k(tiny_corpus).utterances})
    feats = tmp_path / "vgg16.npz"  # stands in for VGG-16 features: only their shape matters here
    np.savez(feats, names=np.array(names), features=np.zeros((len(names), 4096), np.float32))
    opts = SweepOptions(
        "sharing",
        data=str(tiny_corpus),
        base="chrupala2019",
        picks={"variant.row": ["row06"]},
        seeds=[0],
        overrides={"data.image_features": str(feats)},
    )
    spec, _, base = resolved_sweep(opts)
    cell = plan_sweep(spec, base)["cells"][0]
    assert cell["config"]["model.three.bidirectional"] is False and cell["config"]["data.features"] == "chrupala13"
    assert cell["config"]["model.three.s2i"] == 2 and cell["config"]["train.epochs"] == 25
    assert set(cell["batches_per_epoch"]) == {"s2i", "s2t", "t2i"}
    from vgs.config import ConfigError

    with pytest.raises(ConfigError, match="unknown base config 'nope'"):
        resolved_sweep(SweepOptions("sharing", base="nope"))


@pytest.mark.slow
def test_every_optuna_configuration_runs_with_every_seed_and_a_finished_sweep_takes_more(tmp_path, vgs_home):
    """--seeds 0,1 on an Optuna space: search.num_samples configurations x 2 seeds (Tune counts
    trials, so Repeater's repeats must be counted in); then --resume --add-seeds 1 runs only seed 2
    of both configurations under the same MLflow parent and redoes the verdict over three seeds."""
    import json
    from pathlib import Path

    from mlflow.tracking import MlflowClient

    # 200 images: 20 validation images, so that R@10 does not saturate at 1.0 (as on 8) and seeds differ
    r = run_sweep(tmp_path, "--seeds", "0,1", "--scheduler", "none", "train.epochs=1", "data.builtin_images=200")
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    summary_file = next(Path(tmp_path / "ray's").glob("smoke_*/summary.json"))
    first = json.loads(summary_file.read_text())
    runs = sorted((t["config"]["model.speech.layers"], t["config"]["train.seed"]) for t in first["trials"])
    assert runs == [(1, 0), (1, 1), (2, 0), (2, 1)]
    assert "Welch t-test p = " in first["verdict"] and "(2 seeds each" in first["verdict"]
    assert_trials_reuse_processes_without_leaking_state(tmp_path)

    more = run_sweep(tmp_path, "--resume", "--add-seeds", "1")
    assert more.returncode == 0, more.stdout[-3000:] + more.stderr[-3000:]
    after = json.loads(summary_file.read_text())
    runs = sorted((t["config"]["model.speech.layers"], t["config"]["train.seed"]) for t in after["trials"])
    assert runs == [(1, 0), (1, 1), (1, 2), (2, 0), (2, 1), (2, 2)]
    kept = {t["trial_id"] for t in first["trials"]}
    assert kept < {t["trial_id"] for t in after["trials"]}  # the first four were not run again
    assert "(3 seeds each" in after["verdict"] and "(added seed)" in more.stdout
    # the verdict's p equals scipy's Welch t-test on the children's selected-epoch scores (issue 23)
    from scipy import stats

    a, b = (c["values"] for c in after["configs"])
    assert len(a) == len(b) == 3
    assert round(after["test"]["p"], 2) == round(stats.ttest_ind(a, b, equal_var=False).pvalue, 2)
    client = MlflowClient(f"sqlite:///{tmp_path / 'mlflow.db'}")
    exp = client.get_experiment_by_name("vgs-smoke")
    parents = client.search_runs([exp.experiment_id], filter_string="tags.`vgs.kind` = 'sweep'")
    assert len(parents) == 1 and parents[0].data.tags["vgs.verdict"] == after["verdict"]
    children = client.search_runs([exp.experiment_id], filter_string="tags.`vgs.kind` = 'trial'")
    assert len(children) == 6


def test_a_second_driver_of_the_same_sweep_is_refused_naming_the_first(tmp_path, capsys):
    """Issue 26 #1: two --resume of one sweep at once both trained it; the folder is held by one driver
    (an flock: a dead driver does not keep it), and the second is refused before Ray starts."""
    import dataclasses
    import json
    import subprocess
    import sys

    from vgs.sweep.cli import main
    from vgs.sweep.options import OPTIONS_FILE, SweepOptions

    folder = tmp_path / "ray" / "smoke_20261204-101010"
    folder.mkdir(parents=True)
    uri = f"sqlite:///{tmp_path}/mlflow.db"
    (folder / OPTIONS_FILE).write_text(json.dumps(dataclasses.asdict(SweepOptions("smoke", tracking_uri=uri))))
    (folder / "tuner.pkl").touch()  # what --resume looks for (never read: the lock comes first)
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys, time; from vgs.sweep.storage import driver_lock\n"
            f"with driver_lock({str(folder)!r}):\n    print('held', flush=True); time.sleep(60)",
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout.readline().strip() == "held"
        code = main(
            [
                "smoke",
                "--resume",
                "--storage",
                str(tmp_path / "ray"),
                "--tracking-uri",
                f"sqlite:///{tmp_path}/mlflow.db",
            ]
        )
        err = capsys.readouterr().err
        assert code == 2 and f"is being run by process {holder.pid} on" in err and "one driver" in err, err
    finally:
        holder.kill()
        holder.wait()
    from vgs.sweep.storage import driver_lock

    with driver_lock(str(folder)):  # the killed holder let go of it
        pass


def assert_trials_reuse_processes_without_leaking_state(tmp_path):
    """Tune reuses a trial's worker process (reuse_actors): the four trials share at most two
    processes (max_concurrent 2), and a trial that ran after another in the same process scores
    exactly as a fresh training of its configuration in this process does."""
    from mlflow.tracking import MlflowClient

    from vgs.config import apply_overrides, base_config
    from vgs.train import fit

    client = MlflowClient(f"sqlite:///{tmp_path / 'mlflow.db'}")
    exp = client.get_experiment_by_name("vgs-smoke")
    trials = client.search_runs([exp.experiment_id], filter_string="tags.`vgs.kind` = 'trial'")
    by_pid: dict[str, list] = {}
    for t in sorted(trials, key=lambda t: t.info.start_time):
        by_pid.setdefault(t.data.tags["vgs.worker_pid"], []).append(t)
    assert len(by_pid) <= 2 and len(trials) == 4, {pid: len(ts) for pid, ts in by_pid.items()}
    later = next(ts[1] for ts in by_pid.values() if len(ts) > 1)
    cfg = apply_overrides(
        base_config("cpu-tiny"),
        {
            "data.builtin_images": 200,
            "train.epochs": 1,
            "train.batch_size": 16,
            "model.speech.layers": int(later.data.params["model.speech.layers"]),
            "train.seed": int(later.data.params["train.seed"]),
        },
    )
    fresh = fit(cfg, out_dir=tmp_path / "fresh")
    assert fresh["train_loss"] == pytest.approx(later.data.metrics["train_loss"], rel=1e-6)
    assert fresh["val_s2i_r10"] == later.data.metrics["val_s2i_r10"]
