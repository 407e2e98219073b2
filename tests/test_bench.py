"""The benchmark runs end to end and reports every figure it promises (no timing is asserted:
figures are for reading, per README)."""

import json
import subprocess
import sys

import numpy as np
import pytest
import torch
from conftest import REFERENCE_STEP

from vgs.tools.bench import bench_config, places_like_lengths, synthetic_batches


def test_places_like_lengths_and_sorted_batches():
    lengths = places_like_lengths(20_000, np.random.default_rng(0))
    assert lengths.min() >= 100 and lengths.max() <= 2048
    assert 600 < np.median(lengths) < 700 and 700 < lengths.mean() < 820
    cfg, batch = bench_config("small")
    batches = synthetic_batches(cfg, batch, 4, torch.device("cpu"))
    assert len(batches) == 4 and all(b["speech"].shape[1] == int(b["lengths"].max()) for b in batches)


def test_bench_prints_reference_and_vgs_figures(tmp_path, vgs_home):
    if not REFERENCE_STEP.exists():
        pytest.skip(f"reference step not found at {REFERENCE_STEP}")
    out = tmp_path / "bench.json"
    run = subprocess.run(
        [
            sys.executable,
            "-m",
            "vgs.tools.bench",
            "--configs",
            "small",
            "--iters",
            "2",
            "--warmup",
            "1",
            "--pack",
            "2",
            "--pack-seconds",
            "2",
            "--loader-images",
            "0",
            "--json",
            str(out),
            "--reference",
            str(REFERENCE_STEP),
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert run.returncode == 0, run.stderr[-3000:]
    figures = json.loads(out.read_text())
    small = figures["configs"]["small"]
    assert small["reference_joint"] > 0 and small["vgs_joint"] > 0
    assert small["ratio"] == pytest.approx(small["vgs_joint"] / small["reference_joint"], rel=0.01)
    assert figures["packing"]["trials"] == 2 and figures["packing"]["packed_aggregate"] > 0
    assert "ratio" in run.stdout and "packing small" in run.stdout


@pytest.mark.slow
def test_overhead_bench_times_vgs_beside_bare_tune_in_one_run(tmp_path, vgs_home):
    out = tmp_path / "overhead.json"
    run = subprocess.run(
        [sys.executable, "-m", "vgs.tools.bench", "--overhead", "--trials", "2", "--json", str(out)],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert run.returncode == 0, run.stdout[-2000:] + run.stderr[-3000:]
    f = json.loads(out.read_text())
    assert f["trials"] == 2 and f["ray_start_s"] > 0
    assert f["bare_reuse_false_per_trial_s"] > 0 and f["bare_reuse_true_per_trial_s"] > 0
    stages = f["vgs_timings_s"]
    assert set(stages) >= {"start_ray", "prepare_data", "search", "finish", "total"}
    assert f["vgs_per_trial_s"] == pytest.approx((f["vgs_wall_s"] - stages["start_ray"]) / 2)
    assert "bare Tune, reuse_actors" in run.stdout and "beyond Ray's start" in run.stdout


def test_an_unknown_bench_config_is_refused_before_any_measurement(capsys):
    from vgs.tools.bench import main

    with pytest.raises(SystemExit) as exit_:
        main(["--configs", "small,nope"])
    assert exit_.value.code == 2
    err = capsys.readouterr()
    assert "--configs: unknown nope; known: paper, small" in err.err and "device" not in err.out
