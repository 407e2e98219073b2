"""The seed-noise verdict of a sweep, and which cells its confirmation phase runs."""
import math

import numpy as np
import pytest

from vgs.searchspace import SweepSpec
from vgs.sweep import confirm_cells, summary_of
from vgs.verdict import ConfigScores, above_chance, group_by_config, ordering, pooled_sd, verdict


def trial(layers, seed, value, status="completed"):
    return {"trial_id": f"L{layers}s{seed}", "config": {"model.speech.layers": layers, "train.seed": seed},
            "status": status, "epochs": 8 if status == "completed" else 2, "val_s2i_r10": value,
            "val_i2s_r10": value, "best_epoch": 1, "seconds": 10.0}


def test_pooled_sd_equals_the_slow_reference():
    groups = [ConfigScores({"a": 1}, [0.30, 0.34, 0.29]), ConfigScores({"a": 2}, [0.20, 0.26]),
              ConfigScores({"a": 3}, [0.1])]  # one seed: no degrees of freedom
    deviations = [v - np.mean(g.values) for g in groups for v in g.values]
    dof = sum(len(g.values) - 1 for g in groups)
    sd, got_dof = pooled_sd(groups)
    assert got_dof == dof == 3
    assert sd == pytest.approx(math.sqrt(np.sum(np.square(deviations)) / dof))


def test_only_completed_trials_count_and_configurations_rank_by_mean():
    trials = [trial(1, 0, 0.40), trial(1, 1, 0.36), trial(2, 0, 0.50, "pruned"), trial(2, 1, 0.30),
              trial(3, 0, float("nan"))]
    groups = group_by_config(trials, "val_s2i_r10", "max")
    assert [g.config for g in groups] == [{"model.speech.layers": 1}, {"model.speech.layers": 2}]
    assert groups[0].values == [0.40, 0.36] and groups[1].values == [0.30]
    low_first = group_by_config(trials, "val_s2i_r10", "min")
    assert low_first[0].config == {"model.speech.layers": 2}


def test_verdict_beyond_within_and_unknown():
    clear = verdict([ConfigScores({"L": 1}, [0.40, 0.42]), ConfigScores({"L": 2}, [0.20, 0.22])], "max", "val_s2i_r10")
    assert clear.beyond_noise is True and clear.line.startswith("beyond seed noise")
    assert clear.sd == pytest.approx(0.02 / math.sqrt(2))  # each pair's sd; pooled over equal sizes
    close = verdict([ConfigScores({"L": 1}, [0.40, 0.30]), ConfigScores({"L": 2}, [0.34, 0.32])], "max", "val_s2i_r10")
    assert close.beyond_noise is False and close.line.startswith("NOT beyond seed noise")
    single = verdict([ConfigScores({"L": 1}, [0.4]), ConfigScores({"L": 2}, [0.2])], "max", "val_s2i_r10")
    assert single.beyond_noise is None and "seed noise unknown" in single.line and "--seeds" in single.line
    alone = verdict([ConfigScores({"L": 1}, [0.4, 0.41])], "max", "val_s2i_r10")
    assert alone.beyond_noise is None and "nothing to compare" in alone.line
    assert verdict([], "max", "val_s2i_r10").beyond_noise is None


def spec(top=2, seeds=(0, 1)):
    return SweepSpec(name="t", path=None, metric="val_s2i_r10", mode="max", confirm_top=top,
                     confirm_seeds=list(seeds), seeds=[0])


def test_confirmation_reruns_the_top_configurations_to_full_budget_and_reuses_completed_trials():
    trials = [trial(1, 0, 0.40), trial(2, 0, 0.35, "pruned"), trial(3, 0, 0.20, "pruned"), trial(4, 0, 0.10)]
    cells = confirm_cells(spec(), trials)
    # layers=1 completed seed 0 already; layers=2 was pruned, so both its seeds run in full
    assert cells == [{"model.speech.layers": 1, "train.seed": 1}, {"model.speech.layers": 2, "train.seed": 0},
                     {"model.speech.layers": 2, "train.seed": 1}]
    assert confirm_cells(spec(top=0), trials) == []


def test_summary_picks_the_winning_configuration_and_counts_compute():
    trials = [trial(1, 0, 0.40), trial(1, 1, 0.42), trial(2, 0, 0.45, "pruned"), trial(2, 0, 0.20),
              trial(2, 1, 0.22)]
    s = summary_of(spec(), trials)
    assert s["beyond_noise"] is True and s["best"]["config"]["model.speech.layers"] == 1
    assert s["trials"][0]["val_s2i_r10"] == 0.45  # the table still lists trials by score
    assert s["compute"] == {"trials": 5, "trial_epochs": 34, "trial_seconds": 50.0, "core_seconds": 50.0}
    assert [c["values"] for c in s["configs"]] == [[0.40, 0.42], [0.20, 0.22]]
    assert s["configs"][0]["seconds"] == 10.0


def test_a_sweep_without_any_scored_trial_ends_failed():
    """Every trial failed (e.g. a conv kernel longer than any utterance, which only the forward
    pass finds): the parent run is FAILED, not FINISHED, and the command exits 1."""
    from vgs.sweep import parent_status, summary_of
    from vgs.searchspace import load

    spec = load("smoke")
    failed = [{"trial_id": "a", "config": {"model.speech.layers": 1}, "epochs": 0, "status": "error", "error": "x"},
              {"trial_id": "b", "config": {"model.speech.layers": 2}, "epochs": 0, "status": "error", "error": "y"}]
    assert parent_status(summary_of(spec, failed)) == "FAILED"
    scored = [{**failed[0], "status": "completed", "epochs": 2, "val_s2i_r10": 0.3, "seconds": 1.0}]
    assert parent_status(summary_of(spec, scored)) == "FINISHED"


TABLE_2 = [("text-image",), ("pipe-ind", "pipe-seq"), ("mtl-asr",), ("mtl-match",), ("speech-image",)]


def test_a_papers_order_holds_tier_by_tier_with_ties_inside_a_tier():
    scores = {"text-image": [0.50, 0.52], "pipe-ind": [0.47, 0.47], "pipe-seq": [0.48, 0.46],
              "mtl-asr": [0.44, 0.45], "mtl-match": [0.42, 0.43], "speech-image": [0.39, 0.40]}
    got = ordering(TABLE_2, scores)
    assert got.holds is True and " holds: " in got.line
    # pipe-seq's mean equals pipe-ind's: a tie inside a tier is allowed; pipe-seq's first seed beats text-image's...
    # ...but only means count, and the worst of a tier is compared with the best of the next
    assert "steps +0.040 +0.025 +0.020 +0.030" in got.line, got.line
    sd = math.sqrt(sum(np.var(v, ddof=1) for v in scores.values()) / len(scores))  # equal n: the mean variance
    assert f"2 sd = {2 * sd:.3f}" in got.line and "every step beyond" in got.line


def test_a_broken_step_names_both_models_and_min_mode_reverses():
    scores = {"text-image": [0.50], "pipe-ind": [0.47], "pipe-seq": [0.40], "mtl-asr": [0.44],
              "mtl-match": [0.42], "speech-image": [0.39]}
    got = ordering(TABLE_2, scores)
    assert got.holds is False and "pipe-seq 0.400 is not ahead of mtl-asr 0.440" in got.line
    assert ordering([("a",), ("b",)], {"a": [0.1], "b": [0.2]}, mode="min").holds is True
    unknown = ordering(TABLE_2, {**scores, "mtl-match": []})
    assert unknown.holds is None and "no score for mtl-match" in unknown.line


def test_a_step_inside_seed_noise_is_said_so():
    got = ordering([("a",), ("b",)], {"a": [0.40, 0.50], "b": [0.39, 0.49]})
    assert got.holds is True and "not every step beyond 2 sd" in got.line


def test_above_chance_counts_the_models_own_seed_sd():
    assert above_chance("speech-image", [0.40, 0.42, 0.44], 0.04) == \
        "speech-image 0.420 ± 0.020 is 19 sd above chance 0.040"
    assert "no sd" in above_chance("speech-image", [0.4], 0.04)
