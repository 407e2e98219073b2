"""Does a sweep's winner beat its runner-up beyond seed noise?  Pure functions over trial records.

A configuration is a trial's config without `train.seed`.  Only trials that ran the whole
budget count (a pruned trial's score is from fewer epochs, so it is not comparable).  Seed noise
is the pooled within-configuration standard deviation over every configuration that has two
or more seeds: sd = sqrt(sum (n_i - 1) s_i^2 / sum (n_i - 1)).  The winner beats the runner-up
when the difference of their means exceeds 2 sd.
"""
from __future__ import annotations

import math
import statistics
from dataclasses import dataclass, field


@dataclass
class ConfigScores:
    """Full-budget scores of one configuration, one per seed."""

    config: dict
    values: list[float] = field(default_factory=list)
    seconds: list[float] = field(default_factory=list)  # each trial's training + validation time

    @property
    def mean(self) -> float:
        return statistics.fmean(self.values)

    @property
    def sd(self) -> float | None:
        return statistics.stdev(self.values) if len(self.values) > 1 else None


def config_key(config: dict) -> tuple:
    return tuple(sorted((k, str(v)) for k, v in config.items() if k != "train.seed"))


def group_by_config(trials: list[dict], key: str, mode: str) -> list[ConfigScores]:
    """Completed trials' `key` scores grouped by configuration, best mean first."""
    groups: dict[tuple, ConfigScores] = {}
    for t in trials:
        value = t.get(key)
        if t.get("status") != "completed" or not isinstance(value, (int, float)) or math.isnan(value):
            continue
        config = {k: v for k, v in t["config"].items() if k != "train.seed"}
        group = groups.setdefault(config_key(config), ConfigScores(config))
        group.values.append(float(value))
        if isinstance(t.get("seconds"), (int, float)):
            group.seconds.append(float(t["seconds"]))
    sign = 1 if mode == "max" else -1
    return sorted(groups.values(), key=lambda g: sign * g.mean, reverse=True)


def pooled_sd(groups: list[ConfigScores]) -> tuple[float | None, int]:
    """(pooled within-configuration sd, its degrees of freedom); None when no configuration has two seeds."""
    dof = sum(len(g.values) - 1 for g in groups)
    if dof == 0:
        return None, 0
    ss = sum((len(g.values) - 1) * g.sd ** 2 for g in groups if len(g.values) > 1)
    return math.sqrt(ss / dof), dof


@dataclass
class Verdict:
    winner: ConfigScores | None
    runner_up: ConfigScores | None
    sd: float | None  # pooled seed sd
    dof: int
    beyond_noise: bool | None  # None: cannot tell (one configuration, or no seed repeats)
    line: str


def label(config: dict) -> str:
    return ", ".join(f"{k}={v}" for k, v in config.items()) or "(base config)"


def verdict(groups: list[ConfigScores], mode: str, metric: str) -> Verdict:
    """The one-line statement: does the best configuration beat the second beyond 2 seed sd?"""
    if not groups:
        return Verdict(None, None, None, 0, None, "no trial ran its full budget: nothing to compare")
    best = groups[0]
    if len(groups) == 1:
        return Verdict(best, None, None, 0, None,
                       f"only one configuration ran its full budget ({label(best.config)}): nothing to compare")
    second = groups[1]
    sd, dof = pooled_sd(groups)
    margin = abs(best.mean - second.mean)
    scores = (f"{label(best.config)}: {metric} {_ms(best)} vs runner-up {label(second.config)}: {_ms(second)}")
    if sd is None:
        return Verdict(best, second, None, 0, None,
                       f"seed noise unknown (one seed per configuration): {scores}; difference {margin:.3f}. "
                       f"Repeat seeds (--seeds 0,1 or 'confirm:' in the search space) to know whether it is a result")
    runs = sum(len(g.values) for g in groups if len(g.values) > 1)
    noise = f"2 sd = {2 * sd:.3f}, seed sd pooled over {runs} runs of {sum(len(g.values) > 1 for g in groups)} configurations"
    if margin > 2 * sd:
        return Verdict(best, second, sd, dof, True,
                       f"beyond seed noise: {scores}; difference {margin:.3f} > {noise}")
    return Verdict(best, second, sd, dof, False,
                   f"NOT beyond seed noise: {scores}; difference {margin:.3f} <= {noise}")


def _ms(g: ConfigScores) -> str:
    if g.sd is None:
        return f"{g.mean:.3f} (n=1)"
    return f"{g.mean:.3f} ± {g.sd:.3f} (n={len(g.values)})"


@dataclass
class Ordering:
    holds: bool | None  # None: a model of the order has no score
    line: str


def ordering(tiers: list[tuple[str, ...]], scores: dict[str, list[float]], mode: str = "max") -> Ordering:
    """Does a paper's ranking of models hold among ours?  `tiers` is best first; the models of one
    tier are tied in the paper (e.g. pipe-ind, pipe-seq), so only consecutive tiers are compared:
    the worst mean of a tier must beat the best mean of the next.  Each step says whether its
    margin exceeds 2 seed sd (pooled over these models' seeds)."""
    missing = [m for tier in tiers for m in tier if not scores.get(m)]
    order = " > ".join(", ".join(t) for t in tiers)
    if missing:
        return Ordering(None, f"order {order}: cannot tell, no score for {', '.join(missing)}")
    sign = 1 if mode == "max" else -1
    groups = [ConfigScores({"model": m}, list(scores[m])) for tier in tiers for m in tier]
    sd, _ = pooled_sd(groups)
    mean = {g.config["model"]: g.mean for g in groups}
    steps, broken, clear = [], [], True
    for upper, lower in zip(tiers, tiers[1:]):
        weakest = min(upper, key=lambda m: sign * mean[m])
        strongest = max(lower, key=lambda m: sign * mean[m])
        margin = sign * (mean[weakest] - mean[strongest])
        if margin <= 0:
            broken.append(f"{weakest} {mean[weakest]:.3f} is not ahead of {strongest} {mean[strongest]:.3f}")
        clear = clear and sd is not None and margin > 2 * sd
        steps.append(f"{margin:+.3f}")
    listed = " > ".join(", ".join(f"{m} {mean[m]:.3f}" for m in tier) for tier in tiers)
    noise = ("seed sd unknown (one seed each)" if sd is None else
             f"{'every' if clear else 'not every'} step beyond 2 sd = {2 * sd:.3f} (seed sd pooled over these models)")
    if broken:
        return Ordering(False, f"order {order} does NOT hold: {'; '.join(broken)} (ours: {listed})")
    return Ordering(True, f"order {order} holds: {listed}; steps {' '.join(steps)}, {noise}")


def above_chance(name: str, values: list[float], chance: float) -> str:
    """'speech-image 0.401 ± 0.005 is 72 sd above chance 0.040' (its own seeds' sd)."""
    if len(values) < 2:
        return f"{name} {statistics.fmean(values):.3f} (one seed) against chance {chance:.3f}: no sd to compare"
    m, s = statistics.fmean(values), statistics.stdev(values)
    times = (m - chance) / s if s > 0 else math.inf
    return f"{name} {m:.3f} ± {s:.3f} is {times:.0f} sd above chance {chance:.3f}"
