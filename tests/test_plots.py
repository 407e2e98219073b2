"""The sweep plots drawn from plain trial records (the MLflow half is covered by test_sweep)."""

import pytest

from vgs.results.plots import TrialRun, chance_of, draw_sweep_plots, grid_means, param_importance


def trials_2d():
    out = []
    for layers in ("1", "2"):
        for latent in ("64", "128", "256"):
            for seed in ("0", "1"):
                # latent matters, layers barely: the importance must say so
                score = 0.1 + 0.1 * ("64", "128", "256").index(latent) + 0.01 * int(layers) + 0.002 * int(seed)
                pruned = latent == "64" and seed == "1"
                history = [(e, score * e / 3) for e in range(1, 2 if pruned else 4)]
                out.append(
                    TrialRun(
                        label=f"layers={layers} latent={latent} s{seed}",
                        params={"model.speech.layers": layers, "model.latent": latent},
                        seed=seed,
                        history=history,
                        score=score,
                        pruned=pruned,
                        images=250.0,
                    )
                )
    return out


def test_chance_of_recall_at_k():
    assert chance_of("val_s2i_r10", 250) == pytest.approx(0.04)
    assert chance_of("val_s2i_r1", 1000) == pytest.approx(0.001)
    assert chance_of("val_s2i_medr", 250) is None and chance_of("val_wer", 250) is None
    assert chance_of("val_r10", None) is None


def test_grid_means_pools_seeds_per_configuration():
    groups = grid_means(trials_2d())
    assert len(groups) == 6 and all(len(v) == 2 for v in groups.values())
    assert groups[("2", "256")] == pytest.approx([0.32, 0.322])


def test_importance_ranks_the_key_that_moves_the_score():
    space = {"model.speech.layers": {"choice": [1, 2]}, "model.latent": {"choice": [64, 128, 256]}}
    importance = param_importance(trials_2d(), space, "max")
    assert set(importance) == set(space)
    assert importance["model.latent"] > 0.8 > importance["model.speech.layers"]


def test_a_two_key_sweep_gets_every_plot(tmp_path):
    space = {"model.speech.layers": {"choice": [1, 2]}, "model.latent": {"choice": [64, 128, 256]}}
    files = draw_sweep_plots(trials_2d(), list(space), space, "val_s2i_r10", "max", tmp_path)
    assert [f.name for f in files] == [
        "metric_per_epoch.png",
        "heatmap.png",
        "parallel_coordinates.png",
        "param_importance.png",
    ]
    assert all(f.stat().st_size > 5000 for f in files)


def test_a_one_key_grid_sweep_gets_the_curves_only(tmp_path):
    trials = [t for t in trials_2d() if t.params["model.speech.layers"] == "1"]
    for t in trials:
        t.params = {"model.latent": t.params["model.latent"]}
    files = draw_sweep_plots(
        trials,
        ["model.latent"],
        {"model.latent": {"choice": [64, 128, 256]}},
        "val_s2i_r10",
        "max",
        tmp_path,
        importance=False,
    )
    assert [f.name for f in files] == ["metric_per_epoch.png"]


def test_equal_scores_get_no_importance_plot(tmp_path):
    trials = trials_2d()
    for t in trials:
        t.score = 0.25
    space = {"model.speech.layers": {"choice": [1, 2]}, "model.latent": {"choice": [64, 128, 256]}}
    files = draw_sweep_plots(trials, list(space), space, "val_s2i_r10", "max", tmp_path)
    assert "param_importance.png" not in [f.name for f in files] and len(files) == 3


def test_two_hundred_trials_plot_the_best_in_colour_and_count_the_rest(tmp_path):
    import random

    from vgs.results.plots import HIGHLIGHTED, plot_metric_per_epoch, top_configs
    from vgs.results.tables import TABLE_TOP, format_table

    rng = random.Random(0)
    trials = [
        TrialRun(f"lr={i} s0", {"train.lr": str(i)}, "0", [(1, s / 2), (2, s)], s)
        for i, s in enumerate(rng.random() for _ in range(200))
    ]
    best = sorted(trials, key=lambda t: t.score, reverse=True)
    assert top_configs(trials, "max") == [(t.params["train.lr"],) for t in best[:HIGHLIGHTED]]
    assert top_configs(trials, "min") == [(t.params["train.lr"],) for t in best[::-1][:HIGHLIGHTED]]
    plot_metric_per_epoch(trials, "val_s2i_r10", tmp_path / "m.png", "max")
    assert (tmp_path / "m.png").stat().st_size > 10_000
    rows = [
        {"trial_id": f"t{i}", "config": {"train.lr": i}, "epochs": 1, "status": "completed" if i % 4 else "pruned"}
        for i in range(200)
    ]
    table = format_table(rows, ["train.lr"])
    assert table.count("\n| t") == TABLE_TOP and "| t24 " in table and "| t25 " not in table
    assert table.endswith(
        "... and 175 more trials (132 completed, 43 pruned); every trial is in summary.json and "
        "under the MLflow parent run"
    )
