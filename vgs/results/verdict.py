"""Does a sweep's winner beat its runner-up beyond seed noise?  Pure functions over trial records.

A configuration is a trial's config without `train.seed`.  Only trials that ran the whole
budget count (a pruned trial's score is from fewer epochs, so it is not comparable).  Two
configurations are compared by Welch's two-sided t-test on their per-seed scores (unequal
variances), at a significance level `alpha` (0.05 by default; `alpha:` in a search space,
`--alpha` on the command line), stated with p and the 95% confidence interval of the difference
of means.  Every full-budget configuration is compared with the best, Holm-corrected for the
number of comparisons: those not significantly worse form the best group (tied).  Where a
difference is not significant, `seeds_needed` says how many seeds per configuration would detect
it at 80% power with the pooled seed sd: sd = sqrt(sum (n_i - 1) s_i^2 / sum (n_i - 1)).  Scores
are rounded to 6 decimals first, so that a last-bit difference between machines moves no verdict.
"""

from __future__ import annotations

import math
import statistics
from dataclasses import dataclass, field

ALPHA = 0.05  # the default significance level
POWER = 0.8  # the power the seeds-needed figure aims at
DIGITS = 6  # scores are rounded to this many decimals before any test


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
    ss = sum((len(g.values) - 1) * g.sd**2 for g in groups if len(g.values) > 1 and g.sd is not None)
    return math.sqrt(ss / dof), dof


@dataclass
class Welch:
    """Welch's two-sided t-test of mean(a) - mean(b)."""

    diff: float
    t: float
    dof: float
    p: float
    ci: tuple[float, float]  # the confidence interval of diff at `confidence`
    n: tuple[int, int]


def welch(a: list[float], b: list[float], confidence: float = 0.95) -> Welch:
    """Welch's t-test on two samples of two or more values each (scipy's t distribution)."""
    from scipy import stats

    a, b = [round(v, DIGITS) for v in a], [round(v, DIGITS) for v in b]
    na, nb = len(a), len(b)
    if na < 2 or nb < 2:
        raise ValueError("Welch's t-test needs two or more values in each sample")
    diff = statistics.fmean(a) - statistics.fmean(b)
    va, vb = statistics.variance(a) / na, statistics.variance(b) / nb
    se = math.sqrt(va + vb)
    if se == 0:  # no spread at all: any difference is certain, none is none
        return Welch(
            diff,
            math.copysign(math.inf, diff) if diff else 0.0,
            na + nb - 2,
            0.0 if diff else 1.0,
            (diff, diff),
            (na, nb),
        )
    dof = (va + vb) ** 2 / (va**2 / (na - 1) + vb**2 / (nb - 1))
    t = diff / se
    half = stats.t.ppf(0.5 + confidence / 2, dof) * se
    return Welch(diff, t, dof, float(2 * stats.t.sf(abs(t), dof)), (float(diff - half), float(diff + half)), (na, nb))


def holm(p_values: list[float]) -> list[float]:
    """Holm's step-down adjusted p-values, in the order given."""
    m = len(p_values)
    order = sorted(range(m), key=lambda i: p_values[i])
    adjusted, running = [0.0] * m, 0.0
    for rank, i in enumerate(order):
        running = max(running, min(1.0, (m - rank) * p_values[i]))
        adjusted[i] = running
    return adjusted


def seeds_needed(diff: float, sd: float, alpha: float = ALPHA, power: float = POWER, most: int = 1000) -> int | None:
    """Seeds per configuration for a two-sided two-sample t-test at `alpha` to detect a true
    difference `diff` with `power`, where seeds vary by `sd` (noncentral t); None past `most`."""
    from scipy import stats

    if sd <= 0:
        return 2
    if diff == 0:
        return None
    for n in range(2, most + 1):
        dof = 2 * n - 2
        nc = abs(diff) / (sd * math.sqrt(2 / n))
        crit = stats.t.ppf(1 - alpha / 2, dof)
        if stats.nct.sf(crit, dof, nc) + stats.nct.cdf(-crit, dof, nc) >= power:
            return n
    return None


@dataclass
class Verdict:
    winner: ConfigScores | None
    runner_up: ConfigScores | None
    sd: float | None  # pooled seed sd
    dof: int
    beyond_noise: bool | None  # significant at alpha; None: cannot tell (one configuration, or one seed)
    line: str
    test: Welch | None = None  # winner vs runner-up
    tied: list[ConfigScores] = field(default_factory=list)  # the best group: not significantly worse than the best
    worse: list[ConfigScores] = field(default_factory=list)
    seeds_needed: int | None = None  # per configuration, where winner vs runner-up is not significant


def label(config: dict) -> str:
    return ", ".join(f"{k}={v}" for k, v in config.items()) or "(base config)"


def stated(test: Welch, alpha: float) -> str:
    """'+0.046, 95% CI [+0.012, +0.080], Welch t-test p = 0.021 (3 seeds each)'."""
    n = f"{test.n[0]} seeds each" if test.n[0] == test.n[1] else f"{test.n[0]} and {test.n[1]} seeds"
    return (
        f"{test.diff:+.3f}, 95% CI [{test.ci[0]:+.3f}, {test.ci[1]:+.3f}], Welch t-test p = {test.p:.3g} "
        f"({n}; alpha {alpha:g})"
    )


def verdict(groups: list[ConfigScores], mode: str, metric: str, alpha: float = ALPHA, more_seeds: str = "") -> Verdict:
    """The statement a sweep ends with: does the best configuration beat the second (Welch's
    t-test at `alpha`), which configurations are tied with the best (Holm), and, where the
    difference is not significant, how many seeds would tell (`more_seeds`: the command that
    runs them, with {n} for the count, {seeds} for the seeds 0..n-1 and {add} for how many more
    the best two need)."""
    if not groups:
        return Verdict(None, None, None, 0, None, "no trial ran its full budget: nothing to compare")
    best = groups[0]
    if len(groups) == 1:
        return Verdict(
            best,
            None,
            None,
            0,
            None,
            f"only one configuration ran its full budget ({label(best.config)}): nothing to compare",
        )
    second = groups[1]
    sd, dof = pooled_sd(groups)
    sign = 1 if mode == "max" else -1
    scores = f"{label(best.config)}: {metric} {_ms(best)} vs runner-up {label(second.config)}: {_ms(second)}"
    if len(best.values) < 2 or len(second.values) < 2:
        return Verdict(
            best,
            second,
            sd,
            dof,
            None,
            f"seed noise unknown (fewer than two seeds of the best two configurations): {scores}; "
            f"difference {best.mean - second.mean:+.3f}. Repeat seeds (--seeds 0,1,2 or 'confirm:' in the "
            f"search space) to know whether it is a result",
        )
    test = welch(best.values, second.values)
    tied, worse = best_group(groups, sign, alpha)
    group = group_statement(tied, worse)
    if test.p < alpha and sign * test.diff > 0:
        return Verdict(
            best,
            second,
            sd,
            dof,
            True,
            f"{label(best.config)} beats {label(second.config)}: {stated(test, alpha)}; {scores}. {group}",
            test,
            tied,
            worse,
        )
    needed = seeds_needed(test.diff, sd, alpha) if sd else None
    more = "" if needed is None or not sd else more_seeds_hint(test, sd, needed, best, second, more_seeds)
    return Verdict(
        best,
        second,
        sd,
        dof,
        False,
        f"NOT significant: {label(best.config)} vs {label(second.config)} "
        f"{stated(test, alpha)}; {scores}{more}. {group}",
        test,
        tied,
        worse,
        needed,
    )


def group_statement(tied: list[ConfigScores], worse: list[ConfigScores]) -> str:
    return (
        f"best group: {', '.join(label(g.config) for g in tied)}"
        + (" (tied)" if len(tied) > 1 else "")
        + (f"; worse: {', '.join(label(g.config) for g in worse)}" if worse else "")
        + f" (Welch t-tests against the best, Holm-corrected over {len(tied) + len(worse) - 1})"
    )


def more_seeds_hint(test: Welch, sd: float, needed: int, best: ConfigScores, second: ConfigScores, command: str) -> str:
    """How many seeds would detect the difference, and the command that runs them (`command`)."""
    add = max(1, needed - min(len(best.values), len(second.values)))
    hint = f"; about {needed} seeds each would detect {test.diff:+.3f} at {POWER:.0%} power (seed sd {sd:.3f})"
    if command:
        hint += f": {command.format(n=needed, seeds=','.join(map(str, range(needed))), add=add)}"
    return hint


def best_group(groups: list[ConfigScores], sign: int, alpha: float) -> tuple[list[ConfigScores], list[ConfigScores]]:
    """(configurations not significantly worse than the best, the rest): one-sided reading of
    two-sided Welch tests of the best against each other configuration with two or more seeds,
    Holm-adjusted; a configuration with one seed cannot be told apart and stays tied."""
    best, others = groups[0], groups[1:]
    testable = [g for g in others if len(g.values) > 1 and len(best.values) > 1]
    tests = [welch(best.values, g.values) for g in testable]
    adjusted = holm([t.p for t in tests])
    worse_ids = {id(g) for g, t, p in zip(testable, tests, adjusted) if p < alpha and sign * t.diff > 0}
    return [best] + [g for g in others if id(g) not in worse_ids], [g for g in others if id(g) in worse_ids]


def _ms(g: ConfigScores) -> str:
    if g.sd is None:
        return f"{g.mean:.3f} (n=1)"
    return f"{g.mean:.3f} ± {g.sd:.3f} (n={len(g.values)})"


@dataclass
class Ordering:
    holds: bool | None  # None: a model of the order has no score
    line: str


def ordering(
    tiers: list[tuple[str, ...]], scores: dict[str, list[float]], mode: str = "max", alpha: float = ALPHA
) -> Ordering:
    """Does a paper's ranking of models hold among ours?  `tiers` is best first; the models of one
    tier are tied in the paper (e.g. pipe-ind, pipe-seq), so only consecutive tiers are compared:
    the worst mean of a tier must beat the best mean of the next.  Each step is tested with
    Welch's t-test (its p is stated; significant at `alpha`)."""
    missing = [m for tier in tiers for m in tier if not scores.get(m)]
    order = " > ".join(", ".join(t) for t in tiers)
    if missing:
        return Ordering(None, f"order {order}: cannot tell, no score for {', '.join(missing)}")
    sign = 1 if mode == "max" else -1
    groups = [ConfigScores({"model": m}, list(scores[m])) for tier in tiers for m in tier]
    sd, _ = pooled_sd(groups)
    mean = {g.config["model"]: g.mean for g in groups}
    steps, broken, clear, tested = [], [], True, True
    for upper, lower in zip(tiers, tiers[1:]):
        weakest = min(upper, key=lambda m: sign * mean[m])
        strongest = max(lower, key=lambda m: sign * mean[m])
        margin = sign * (mean[weakest] - mean[strongest])
        if margin <= 0:
            broken.append(f"{weakest} {mean[weakest]:.3f} is not ahead of {strongest} {mean[strongest]:.3f}")
        if len(scores[weakest]) > 1 and len(scores[strongest]) > 1:
            test = welch(scores[weakest], scores[strongest])
            clear = clear and test.p < alpha and margin > 0
            steps.append(f"{margin:+.3f} (p = {test.p:.2g})")
        else:
            tested = False
            steps.append(f"{margin:+.3f}")
    listed = " > ".join(", ".join(f"{m} {mean[m]:.3f}" for m in tier) for tier in tiers)
    noise = (
        "seed noise unknown (one seed of a step's models)"
        if not tested
        else f"{'every' if clear else 'not every'} step significant (Welch t-test, alpha {alpha:g})"
    )
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


def saturated(values: list[float], metric: str, mode: str) -> str | None:
    """A statement when every score sits at the metric's bound (R@k, accuracy or BLEU of 1 when
    maximised, WER or CER of 0, median rank of 1 when minimised): the metric cannot separate the
    configurations, e.g. R@10 over a validation split of 10 images.  None otherwise."""
    if len(values) < 2:
        return None
    bound = 1.0 if mode == "max" or metric.endswith("medr") else 0.0
    if any(abs(v - bound) > 1e-9 for v in values):
        return None
    return (
        f"{metric} is {bound:g} for all {len(values)} scored trials: the metric is at its "
        f"{'ceiling' if mode == 'max' else 'floor'} on this validation split (a larger split, or a harder "
        f"metric such as R@1, would separate them)"
    )
