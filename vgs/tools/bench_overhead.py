"""What a sweep costs beyond its training, per trial: a vgs sweep of short trials beside bare Ray Tune
trials that only import torch and report once, measured in the same run on the same machine.

    vgs bench --overhead [--trials 24] [--concurrent 2]

The vgs sweep is `python -m vgs.sweep` on a grid of `--trials` one-epoch cpu-tiny trials over an 80-image
built-in corpus (scheduler none), as a user runs it; its per-trial figure is the command's wall time less
its Ray start, over the trials.  Bare Tune is timed with and without reuse_actors (a fresh worker
process per trial, or one per concurrent slot).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

from vgs.config import base_config, vgs_home
from vgs.data.prepare import prepare
from vgs.sweep.ray_start import init_ray

IMAGES = 80


def sweep_spec(trials: int, concurrent: int) -> dict:
    """A grid of `trials` one-epoch trials that differ only in learning rate."""
    return {
        "description": f"{trials} one-epoch trials on an {IMAGES}-image corpus (per-trial overhead)",
        "base": "cpu-tiny",
        "overrides": {"data.builtin_images": IMAGES, "train.epochs": 1, "train.test_at_end": False},
        "space": {"train.lr": {"choice": [round(1e-4 * (i + 1), 6) for i in range(trials)]}},
        "search": {"algorithm": "grid"},
        "scheduler": {"type": "none"},
        "metric": "val_s2i_r10",
        "mode": "max",
        "seeds": [0],
        "resources": {"cpu": 1, "gpu": 0},
        "max_concurrent": concurrent,
    }


def _bare_trial(config: dict) -> None:
    import torch  # noqa: F401 - what every vgs trial imports first
    from ray import tune

    tune.report({"x": float(config["i"])})


def bare_tune(trials: int, concurrent: int, folder: Path) -> dict:
    """Seconds of ray.init, and of `trials` bare function trials with and without reuse_actors."""
    os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")  # no status table per experiment, as in vgs.sweep
    import ray
    from ray import tune

    t0 = time.time()
    init_ray(None, num_cpus=concurrent, include_dashboard=False, log_to_driver=False)  # as a local sweep's
    out = {"ray_start_s": time.time() - t0}
    try:
        for reuse in (False, True):
            t0 = time.time()
            tune.Tuner(
                _bare_trial,
                param_space={"i": tune.grid_search(list(range(trials)))},
                tune_config=tune.TuneConfig(max_concurrent_trials=concurrent, reuse_actors=reuse),
                run_config=tune.RunConfig(name=f"bare-reuse{reuse}", storage_path=str(folder), verbose=0),
            ).fit()
            out[f"bare_reuse_{str(reuse).lower()}_per_trial_s"] = (time.time() - t0) / trials
    finally:
        ray.shutdown()
    return out


def vgs_sweep(trials: int, concurrent: int, folder: Path) -> dict:
    """The sweep command's wall time and its driver's stage timings (summary.json)."""
    spec = folder / "overhead.yaml"
    spec.write_text(yaml.safe_dump(sweep_spec(trials, concurrent)))
    cmd = [sys.executable, "-m", "vgs.sweep", str(spec), "--storage", str(folder / "results")]
    cmd += ["--tracking-uri", f"sqlite:///{folder / 'mlflow.db'}"]
    env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}  # a local Ray, as for bare Tune
    env["VGS_HOME"] = str(vgs_home())  # the corpus warm_corpus built, wherever the command runs
    t0 = time.time()
    run = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=folder)
    wall = time.time() - t0
    if run.returncode != 0:
        raise SystemExit(f"the overhead sweep failed ({' '.join(cmd)}):\n{run.stderr[-3000:]}")
    timings = json.loads(next((folder / "results").glob("overhead_*/summary.json")).read_text())["timings"]
    return {
        "vgs_wall_s": wall,
        "vgs_timings_s": timings,
        "vgs_per_trial_s": (wall - timings["start_ray"]) / trials,
        "vgs_search_per_trial_s": timings["search"] / trials,
    }


def warm_corpus() -> None:
    """The sweep's corpus and stores exist before it is timed (building them is not overhead)."""
    cfg = base_config("cpu-tiny")
    cfg.data.builtin_images = IMAGES
    prepare(cfg.data)


def measure(trials: int = 24, concurrent: int = 2) -> dict:
    warm_corpus()
    with tempfile.TemporaryDirectory(prefix="vgs-overhead-") as tmp:
        folder = Path(tmp)
        figures = {"trials": trials, "concurrent": concurrent, "cpus": os.cpu_count()}
        figures.update(bare_tune(trials, concurrent, folder / "bare"))
        figures.update(vgs_sweep(trials, concurrent, folder))
    return figures


def format_figures(f: dict) -> str:
    t = f["vgs_timings_s"]
    stages = ", ".join(f"{k} {v:.1f}" for k, v in t.items() if k != "total")
    return "\n".join(
        [
            f"per-trial overhead: {f['trials']} trials, {f['concurrent']} at a time, {f['cpus']} CPUs",
            f"  ray.init                          {f['ray_start_s']:6.2f} s",
            f"  bare Tune, fresh process per trial {f['bare_reuse_false_per_trial_s']:6.2f} s/trial",
            f"  bare Tune, reuse_actors           {f['bare_reuse_true_per_trial_s']:6.2f} s/trial",
            f"  vgs sweep (1-epoch cpu-tiny)      {f['vgs_per_trial_s']:6.2f} s/trial beyond Ray's start "
            f"(command {f['vgs_wall_s']:.1f} s; search {f['vgs_search_per_trial_s']:.2f} s/trial incl. training)",
            f"  vgs driver stages (s): {stages}",
        ]
    )
