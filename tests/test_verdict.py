"""The seed-noise verdict of a sweep, and which cells its confirmation phase runs."""

import math

import numpy as np
import pytest

from vgs.results.verdict import (
    ConfigScores,
    above_chance,
    group_by_config,
    holm,
    ordering,
    pooled_sd,
    seeds_needed,
    verdict,
    welch,
)
from vgs.search_spaces.model import SweepSpec
from vgs.sweep.phases import confirm_cells, summary_of


def trial(layers, seed, value, status="completed"):
    return {
        "trial_id": f"L{layers}s{seed}",
        "config": {"model.speech.layers": layers, "train.seed": seed},
        "status": status,
        "epochs": 8 if status == "completed" else 2,
        "val_s2i_r10": value,
        "val_i2s_r10": value,
        "best_epoch": 1,
        "seconds": 10.0,
    }


def test_pooled_sd_equals_the_slow_reference():
    groups = [
        ConfigScores({"a": 1}, [0.30, 0.34, 0.29]),
        ConfigScores({"a": 2}, [0.20, 0.26]),
        ConfigScores({"a": 3}, [0.1]),
    ]  # one seed: no degrees of freedom
    deviations = [v - np.mean(g.values) for g in groups for v in g.values]
    dof = sum(len(g.values) - 1 for g in groups)
    sd, got_dof = pooled_sd(groups)
    assert got_dof == dof == 3
    assert sd == pytest.approx(math.sqrt(np.sum(np.square(deviations)) / dof))


def test_only_completed_trials_count_and_configurations_rank_by_mean():
    trials = [
        trial(1, 0, 0.40),
        trial(1, 1, 0.36),
        trial(2, 0, 0.50, "pruned"),
        trial(2, 1, 0.30),
        trial(3, 0, float("nan")),
    ]
    groups = group_by_config(trials, "val_s2i_r10", "max")
    assert [g.config for g in groups] == [{"model.speech.layers": 1}, {"model.speech.layers": 2}]
    assert groups[0].values == [0.40, 0.36] and groups[1].values == [0.30]
    low_first = group_by_config(trials, "val_s2i_r10", "min")
    assert low_first[0].config == {"model.speech.layers": 2}


def test_verdict_beyond_within_and_unknown():
    clear = verdict([ConfigScores({"L": 1}, [0.40, 0.42]), ConfigScores({"L": 2}, [0.20, 0.22])], "max", "val_s2i_r10")
    assert clear.beyond_noise is True and clear.line.startswith("L=1 beats L=2: +0.200, 95% CI [")
    assert "Welch t-test p = " in clear.line and "(2 seeds each; alpha 0.05)" in clear.line
    assert clear.sd == pytest.approx(0.02 / math.sqrt(2))  # each pair's sd; pooled over equal sizes
    close = verdict([ConfigScores({"L": 1}, [0.40, 0.30]), ConfigScores({"L": 2}, [0.34, 0.32])], "max", "val_s2i_r10")
    assert close.beyond_noise is False and close.line.startswith("NOT significant: L=1 vs L=2")
    single = verdict([ConfigScores({"L": 1}, [0.4]), ConfigScores({"L": 2}, [0.2])], "max", "val_s2i_r10")
    assert single.test is None
    assert single.beyond_noise is None and "seed noise unknown" in single.line and "--seeds" in single.line
    alone = verdict([ConfigScores({"L": 1}, [0.4, 0.41])], "max", "val_s2i_r10")
    assert alone.beyond_noise is None and "nothing to compare" in alone.line
    assert verdict([], "max", "val_s2i_r10").beyond_noise is None


def spec(top=2, seeds=(0, 1)):
    return SweepSpec(
        name="t", path=None, metric="val_s2i_r10", mode="max", confirm_top=top, confirm_seeds=list(seeds), seeds=[0]
    )


def test_confirmation_reruns_the_top_configurations_to_full_budget_and_reuses_completed_trials():
    trials = [trial(1, 0, 0.40), trial(2, 0, 0.35, "pruned"), trial(3, 0, 0.20, "pruned"), trial(4, 0, 0.10)]
    cells = confirm_cells(spec(), trials)
    # layers=1 completed seed 0 already; layers=2 was pruned, so both its seeds run in full
    assert cells == [
        {"model.speech.layers": 1, "train.seed": 1},
        {"model.speech.layers": 2, "train.seed": 0},
        {"model.speech.layers": 2, "train.seed": 1},
    ]
    assert confirm_cells(spec(top=0), trials) == []


def test_summary_picks_the_winning_configuration_and_counts_compute():
    trials = [trial(1, 0, 0.40), trial(1, 1, 0.42), trial(2, 0, 0.45, "pruned"), trial(2, 0, 0.20), trial(2, 1, 0.22)]
    s = summary_of(spec(), trials)
    assert s["beyond_noise"] is True and s["best"]["config"]["model.speech.layers"] == 1
    assert s["trials"][0]["val_s2i_r10"] == 0.45  # the table still lists trials by score
    assert s["compute"] == {"trials": 5, "trial_epochs": 34, "trial_seconds": 50.0, "core_seconds": 50.0}
    assert [c["values"] for c in s["configs"]] == [[0.40, 0.42], [0.20, 0.22]]
    assert s["configs"][0]["seconds"] == 10.0


def test_the_add_seeds_command_is_the_sweeps_own_resume_command_shell_quoted():
    """Issue 36 #6: the command named the YAML's stem ("unknown sweep"), left out --storage, and was
    not quoted: pasting it ran a $(touch ...) taken from the file's name."""
    import shlex

    trials = [trial(1, 0, 0.40), trial(1, 1, 0.30), trial(2, 0, 0.36), trial(2, 1, 0.28)]
    path = "/sweeps/a b/$(touch pwned){x}.yaml"
    resume = shlex.join(["python", "-m", "vgs.sweep", path, "--resume", "--storage", "/tmp/ray results"])
    line = summary_of(spec(), trials, resume)["verdict"]
    command = line[line.index("python -m vgs.sweep") : line.index(" --top 2") + len(" --top 2")]
    args = shlex.split(command)
    assert args[:8] == ["python", "-m", "vgs.sweep", path, "--resume", "--storage", "/tmp/ray results", "--add-seeds"]
    assert int(args[8]) >= 1 and args[9:] == ["--top", "2"], line


def test_a_sweep_without_any_scored_trial_ends_failed():
    """Every trial failed (e.g. a conv kernel longer than any utterance, which only the forward
    pass finds): the parent run is FAILED, not FINISHED, and the command exits 1."""
    from vgs.search_spaces.spec import load
    from vgs.sweep.phases import parent_status, summary_of

    spec = load("smoke")
    failed = [
        {"trial_id": "a", "config": {"model.speech.layers": 1}, "epochs": 0, "status": "error", "error": "x"},
        {"trial_id": "b", "config": {"model.speech.layers": 2}, "epochs": 0, "status": "error", "error": "y"},
    ]
    assert parent_status(summary_of(spec, failed)) == "FAILED"
    scored = [{**failed[0], "status": "completed", "epochs": 2, "val_s2i_r10": 0.3, "seconds": 1.0}]
    assert parent_status(summary_of(spec, scored)) == "FINISHED"


TABLE_2 = [("text-image",), ("pipe-ind", "pipe-seq"), ("mtl-asr",), ("mtl-match",), ("speech-image",)]


def test_a_papers_order_holds_tier_by_tier_with_ties_inside_a_tier():
    scores = {
        "text-image": [0.50, 0.52],
        "pipe-ind": [0.47, 0.47],
        "pipe-seq": [0.48, 0.46],
        "mtl-asr": [0.44, 0.45],
        "mtl-match": [0.42, 0.43],
        "speech-image": [0.39, 0.40],
    }
    got = ordering(TABLE_2, scores)
    assert got.holds is True and " holds: " in got.line
    # pipe-seq's mean equals pipe-ind's: a tie inside a tier is allowed; pipe-seq's first seed beats text-image's...
    # ...but only means count, and the worst of a tier is compared with the best of the next
    steps = [
        f"{d} (p = {welch(scores[a], scores[b]).p:.2g})"
        for d, a, b in (
            ("+0.040", "text-image", "pipe-ind"),
            ("+0.025", "pipe-ind", "mtl-asr"),
            ("+0.020", "mtl-asr", "mtl-match"),
            ("+0.030", "mtl-match", "speech-image"),
        )
    ]
    assert "steps " + " ".join(steps) in got.line, got.line
    # two seeds each: none of the steps is significant at 0.05, however clean the order
    assert "not every step significant (Welch t-test, alpha 0.05)" in got.line
    many = {
        m: [v - 0.01, v, v + 0.01] * 2
        for m, v in (
            ("text-image", 0.6),
            ("pipe-ind", 0.5),
            ("pipe-seq", 0.5),
            ("mtl-asr", 0.4),
            ("mtl-match", 0.3),
            ("speech-image", 0.2),
        )
    }
    assert ", every step significant (Welch t-test, alpha 0.05)" in ordering(TABLE_2, many).line


def test_a_broken_step_names_both_models_and_min_mode_reverses():
    scores = {
        "text-image": [0.50],
        "pipe-ind": [0.47],
        "pipe-seq": [0.40],
        "mtl-asr": [0.44],
        "mtl-match": [0.42],
        "speech-image": [0.39],
    }
    got = ordering(TABLE_2, scores)
    assert got.holds is False and "pipe-seq 0.400 is not ahead of mtl-asr 0.440" in got.line
    assert ordering([("a",), ("b",)], {"a": [0.1], "b": [0.2]}, mode="min").holds is True
    unknown = ordering(TABLE_2, {**scores, "mtl-match": []})
    assert unknown.holds is None and "no score for mtl-match" in unknown.line


def test_a_step_inside_seed_noise_is_said_so():
    got = ordering([("a",), ("b",)], {"a": [0.40, 0.50], "b": [0.39, 0.49]})
    assert got.holds is True and "not every step significant" in got.line


def test_above_chance_counts_the_models_own_seed_sd():
    assert (
        above_chance("speech-image", [0.40, 0.42, 0.44], 0.04)
        == "speech-image 0.420 ± 0.020 is 19 sd above chance 0.040"
    )
    assert "no sd" in above_chance("speech-image", [0.4], 0.04)


# ------------------------------------------------------------------ the test behind the verdict


def _t_tail_slow(t: float, dof: float, steps: int = 200_000) -> float:
    """Two-sided tail of Student's t by Simpson's rule on its density: 1 - 2 * integral from 0 to |t|."""
    c = math.gamma((dof + 1) / 2) / (math.sqrt(dof * math.pi) * math.gamma(dof / 2))
    f = lambda x: c * (1 + x * x / dof) ** (-(dof + 1) / 2)
    h = abs(t) / steps
    total = f(0) + f(abs(t)) + sum((4 if i % 2 else 2) * f(i * h) for i in range(1, steps))
    return 1 - 2 * total * h / 3


@pytest.mark.parametrize(
    "a,b",
    [
        ([0.401, 0.394], [0.355, 0.320]),  # the README's demo figures (issue 23)
        ([0.30, 0.34, 0.29], [0.20, 0.26, 0.25, 0.21]),
        ([0.5, 0.52, 0.49], [0.51, 0.53, 0.50]),
    ],
)
def test_welch_equals_scipy_and_a_slow_reference(a, b):
    from scipy import stats

    got = welch(a, b)
    ref = stats.ttest_ind(a, b, equal_var=False)
    assert got.t == pytest.approx(ref.statistic) and got.p == pytest.approx(ref.pvalue)
    assert got.dof == pytest.approx(ref.df)
    # by hand: the Welch-Satterthwaite degrees of freedom, the t density integrated numerically
    va, vb = np.var(a, ddof=1) / len(a), np.var(b, ddof=1) / len(b)
    dof = (va + vb) ** 2 / (va**2 / (len(a) - 1) + vb**2 / (len(b) - 1))
    assert got.dof == pytest.approx(dof)
    assert got.p == pytest.approx(_t_tail_slow(got.t, dof), abs=1e-6)
    lo, hi = ref.confidence_interval(0.95)
    assert got.ci == pytest.approx((lo, hi))


def test_the_issues_example_is_not_significant():
    """0.401, 0.394 vs 0.355, 0.320: t = 3.3 on about 1.1 degrees of freedom, p = 0.17."""
    got = welch([0.401, 0.394], [0.355, 0.320])
    assert round(got.t, 1) == 3.4 and round(got.dof, 1) == 1.1 and round(got.p, 2) == 0.17


def test_holm_against_a_worked_example():
    # sorted: 0.005 x 4 = 0.02, 0.01 x 3 = 0.03, 0.03 x 2 = 0.06, 0.04 x 1 -> 0.06 (monotone)
    assert holm([0.01, 0.04, 0.03, 0.005]) == pytest.approx([0.03, 0.06, 0.06, 0.02])
    assert holm([0.9]) == [0.9] and holm([0.6, 0.7]) == [1.0, 1.0]


def test_seeds_needed_gives_80_percent_power_by_simulation():
    from scipy import stats

    diff, sd = 0.03, 0.02
    n = seeds_needed(diff, sd)
    rng = np.random.default_rng(0)

    def power(k: int, runs: int = 4000) -> float:
        a = rng.normal(diff, sd, size=(runs, k))
        b = rng.normal(0.0, sd, size=(runs, k))
        return float(np.mean(stats.ttest_ind(a, b, axis=1).pvalue < 0.05))

    assert power(n) >= 0.78 and power(n - 1) < 0.80, (n, power(n), power(n - 1))
    assert seeds_needed(0.0, sd) is None and seeds_needed(diff, 0.0) == 2


def test_the_best_group_holds_the_configurations_not_significantly_worse():
    groups = [
        ConfigScores({"c": "A"}, [0.50, 0.51, 0.49]),
        ConfigScores({"c": "B"}, [0.49, 0.50, 0.50]),
        ConfigScores({"c": "C"}, [0.30, 0.31, 0.29]),
        ConfigScores({"c": "D"}, [0.20, 0.21, 0.19]),
        ConfigScores({"c": "E"}, [0.10]),
    ]  # one seed: cannot be told apart
    got = verdict(groups, "max", "val_s2i_r10")
    assert [g.config["c"] for g in got.tied] == ["A", "B", "E"] and [g.config["c"] for g in got.worse] == ["C", "D"]
    assert (
        "best group: c=A, c=B, c=E (tied); worse: c=C, c=D (Welch t-tests against the best, Holm-corrected" in got.line
    )
    assert got.beyond_noise is False and got.seeds_needed is not None and "seeds each would detect" in got.line
    more = verdict(groups, "max", "val_s2i_r10", more_seeds="python -m vgs.sweep x --seeds {seeds}")
    assert f"--seeds {','.join(map(str, range(more.seeds_needed)))}" in more.line


def test_a_last_bit_of_float_rounding_moves_no_verdict():
    a, b = [0.40, 0.42], [0.20, 0.22]
    assert welch(a, b).p == welch([v + 1e-12 for v in a], [v - 1e-12 for v in b]).p


def test_more_seeds_for_a_finished_sweep_are_the_missing_pairs_of_its_top_configurations():
    from vgs.sweep.phases import more_seed_cells

    trials = [
        trial(1, 0, 0.40),
        trial(1, 1, 0.42),
        trial(2, 0, 0.30),
        trial(2, 1, 0.31),
        trial(3, 0, 0.10),
        trial(4, 0, 0.45, "pruned"),
    ]
    cells, seeds = more_seed_cells(spec(top=2), trials, add=2, top=None)
    assert seeds == [0, 1, 2, 3]
    # the best two by their best score: layers=4 (pruned at 0.45: it never ran in full) and layers=1
    assert cells == [{"model.speech.layers": 4, "train.seed": s} for s in (0, 1, 2, 3)] + [
        {"model.speech.layers": 1, "train.seed": s} for s in (2, 3)
    ]
    with pytest.raises(Exception, match="--add-seeds must be >= 1"):
        more_seed_cells(spec(), trials, add=0, top=1)


def test_a_sweep_whose_trials_all_failed_names_no_best_and_fails():
    """Issue 26 #4: trials that logged an epoch and then failed are not the best, and with no other
    trial the parent is FAILED."""
    from vgs.search_spaces.spec import load
    from vgs.sweep.phases import parent_status, summary_of

    spec = load("smoke")
    trials = [
        {
            "trial_id": f"t{k}",
            "config": {"train.seed": 0, "model.latent": 64 * (k + 1)},
            "epochs": 1,
            "status": "error",
            "error": "killed",
            "seconds": 1.0,
            spec.metric: 0.3 + k / 10,
        }
        for k in range(2)
    ]
    summary = summary_of(spec, trials)
    assert summary["best"] is None and parent_status(summary) == "FAILED"
    assert summary["verdict"].startswith("no trial completed: all 2 ended in error")


def test_a_saturated_metric_is_named_as_such():
    from vgs.results.verdict import saturated

    assert "at its ceiling" in saturated([1.0, 1.0, 1.0], "val_s2i_r10", "max")
    assert "at its floor" in saturated([0.0, 0.0], "val_wer", "min")
    assert saturated([1.0, 0.98], "val_s2i_r10", "max") is None
    assert saturated([1.0], "val_s2i_r10", "max") is None
