"""Recall against size and speed: the configurations no other beats on both, score and cost (trainable
parameters, or milliseconds of speech encoding per second of speech).  Mortazavi 2020 claims a smaller
audio encoder loses little recall; a sweep's Pareto sets say how much, for any search space."""

from __future__ import annotations

import math
import statistics
from dataclasses import dataclass

COSTS = {"params_trainable": "trainable parameters", "encode_ms_per_s": "speech encoding ms per s of speech"}


def pareto_front(points: list[tuple[float, float]], mode: str = "max") -> list[int]:
    """Indices of the (score, cost) points that no other point dominates (a score at least as good
    at no higher cost, one of the two strictly), cheapest first."""
    sign = 1 if mode == "max" else -1
    keep = []
    for i, (score, cost) in enumerate(points):
        dominated = any(
            sign * s >= sign * score and c <= cost and (sign * s > sign * score or c < cost)
            for j, (s, c) in enumerate(points)
            if j != i
        )
        if not dominated:
            keep.append(i)
    return sorted(keep, key=lambda i: (points[i][1], -sign * points[i][0]))


@dataclass
class Point:
    """One configuration: its mean score over full-budget seeds and its mean cost."""

    config: dict
    score: float
    cost: float
    seeds: int


def config_points(trials: list[dict], metric: str, cost: str) -> list[Point]:
    """Per configuration (its seeds together), the mean of `metric` and of `cost` over completed trials
    that report both."""
    groups: dict[str, list[dict]] = {}
    for t in trials:
        ok = t.get("status") == "completed" and all(isinstance(t.get(k), (int, float)) for k in (metric, cost))
        if ok and not math.isnan(t[metric]):
            key = repr(sorted((k, str(v)) for k, v in t["config"].items() if k != "train.seed"))
            groups.setdefault(key, []).append(t)
    return [
        Point(
            {k: v for k, v in ts[0]["config"].items() if k != "train.seed"},
            statistics.fmean(t[metric] for t in ts),
            statistics.fmean(t[cost] for t in ts),
            len(ts),
        )
        for ts in groups.values()
    ]


def pareto_sets(trials: list[dict], metric: str, mode: str) -> dict[str, list[dict]]:
    """{cost key: the Pareto set of configurations, cheapest first}, for each cost the trials report."""
    out = {}
    for cost in COSTS:
        points = config_points(trials, metric, cost)
        if len(points) < 2:
            continue
        front = pareto_front([(p.score, p.cost) for p in points], mode)
        out[cost] = [
            {"config": points[i].config, "score": points[i].score, "cost": points[i].cost, "seeds": points[i].seeds}
            for i in front
        ]
    return out


def pareto_lines(sets: dict[str, list[dict]], metric: str) -> list[str]:
    """One line per cost: the set, cheapest first."""
    lines = []
    for cost, front in sets.items():
        items = "; ".join(f"{_config(p['config'])}: {p['score']:.3f} at {_cost(cost, p['cost'])}" for p in front)
        lines.append(f"Pareto set, {metric} against {COSTS[cost]}: {items}")
    return lines


def _config(config: dict) -> str:
    return ", ".join(f"{k}={v}" for k, v in config.items()) or "(base)"


def _cost(cost: str, value: float) -> str:
    if cost == "params_trainable":
        return f"{value / 1e6:.2f} M" if value >= 1e5 else f"{value / 1e3:.1f} k"
    return f"{value:.1f} ms/s"
