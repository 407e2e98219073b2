"""The Pareto sets of a sweep (vgs.results.pareto) on hand-made tables, against a slow obvious reference."""

import itertools
import random

import pytest

from vgs.results.pareto import config_points, pareto_front, pareto_lines, pareto_sets


def dominated_by_brute_force(points, mode):
    """Every pair compared: i is out when some j is at least as good on both and better on one."""
    better = (lambda a, b: a > b) if mode == "max" else (lambda a, b: a < b)
    out = set()
    for (i, (si, ci)), (_, (sj, cj)) in itertools.permutations(enumerate(points), 2):
        if (better(sj, si) or sj == si) and cj <= ci and (better(sj, si) or cj < ci):
            out.add(i)
    return out


def test_a_hand_made_table():
    # (R@10, trainable parameters): b beats a on both; c is cheaper than d with the same score;
    # e is the most accurate; f costs the most for less
    points = [(0.30, 2e6), (0.35, 1e6), (0.40, 3e6), (0.40, 4e6), (0.50, 8e6), (0.45, 9e6)]
    assert pareto_front(points, "max") == [1, 2, 4]  # b, c, e: cheapest first
    wer = [(0.30, 5.0), (0.20, 9.0), (0.25, 4.0)]  # a lower score is better (WER)
    assert pareto_front(wer, "min") == [2, 1]


@pytest.mark.parametrize("mode", ["max", "min"])
def test_the_front_is_every_point_no_other_dominates(mode):
    rng = random.Random(0)
    for _ in range(50):
        points = [(round(rng.random(), 1), rng.choice([1, 2, 3, 4])) for _ in range(rng.randint(1, 9))]
        front = pareto_front(points, mode)
        assert set(front) == set(range(len(points))) - dominated_by_brute_force(points, mode)


def test_configurations_are_their_seeds_mean_and_the_sets_name_them():
    trials = [
        {"config": {"head": "gru", "train.seed": 0}, "status": "completed", "val_r10": 0.4, "params_trainable": 2e6},
        {"config": {"head": "gru", "train.seed": 1}, "status": "completed", "val_r10": 0.2, "params_trainable": 2e6},
        {"config": {"head": "tr", "train.seed": 0}, "status": "completed", "val_r10": 0.5, "params_trainable": 1e6},
        {"config": {"head": "big", "train.seed": 0}, "status": "pruned", "val_r10": 0.9, "params_trainable": 1e5},
        {"config": {"head": "slow", "train.seed": 0}, "status": "completed", "val_r10": 0.6, "params_trainable": 3e6},
    ]
    points = {p.config["head"]: p for p in config_points(trials, "val_r10", "params_trainable")}
    assert points["gru"].score == pytest.approx(0.3) and points["gru"].seeds == 2 and "big" not in points
    sets = pareto_sets(trials, "val_r10", "max")
    assert list(sets) == ["params_trainable"]  # no trial reports an encoding time
    assert [p["config"]["head"] for p in sets["params_trainable"]] == ["tr", "slow"]
    (line,) = pareto_lines(sets, "val_r10")
    assert (
        line == "Pareto set, val_r10 against trainable parameters: head=tr: 0.500 at 1.00 M; head=slow: 0.600 at 3.00 M"
    )
