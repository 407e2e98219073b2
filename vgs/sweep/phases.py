"""A sweep's trial records and its summary: the phases after the search (confirmation, added seeds),
one record per Tune result, and the summary with the verdict and the compute spent."""

from __future__ import annotations

import dataclasses
import math
import shlex
import statistics
from pathlib import Path

from vgs import metric_names
from vgs.config import ConfigError
from vgs.results.pareto import COSTS, pareto_sets
from vgs.results.tables import TABLE_METRICS
from vgs.results.verdict import config_key, group_by_config, saturated, verdict
from vgs.search_spaces.model import SweepSpec, trial_overrides
from vgs.sweep.trial_errors import error_reason


def more_seed_cells(spec: SweepSpec, trials: list[dict], add: int, top: int | None) -> tuple[list[dict], list[int]]:
    """(cells, every seed they bring the top configurations to): the `top` best configurations of a
    finished sweep (confirm.top, else 2) with their seeds so far and `add` more after the largest,
    less the (configuration, seed) pairs that already completed."""
    if add < 1:
        raise ConfigError(f"--add-seeds must be >= 1, got {add}")
    seeds = sorted({t["config"].get("train.seed") for t in trials if t.get("status") == "completed"} - {None})
    start = max(seeds, default=-1) + 1
    every = seeds + list(range(start, start + add))
    wanted = dataclasses.replace(spec, confirm_top=top or spec.confirm_top or 2, confirm_seeds=every)
    return confirm_cells(wanted, trials), every


def confirm_cells(spec: SweepSpec, trials: list[dict]) -> list[dict]:
    """Trial configs (searched keys + train.seed) of the confirmation phase: the `confirm_top` best
    configurations by their best score in the search (pruned trials included: ASHA may stop a good
    configuration early), each with every seed of `confirm_seeds`, less those already completed."""
    if not spec.confirm_top:
        return []
    key, sign = spec.metric, 1 if spec.mode == "max" else -1
    best: dict[tuple, tuple[float, dict]] = {}
    for t in trials:
        value = t.get(key)
        if not isinstance(value, (int, float)) or math.isnan(value):
            continue
        config = {k: v for k, v in t["config"].items() if k != "train.seed"}
        ck = config_key(config)
        if ck not in best or sign * value > sign * best[ck][0]:
            best[ck] = (value, config)
    top = sorted(best.values(), key=lambda vc: sign * vc[0], reverse=True)[: spec.confirm_top]
    done = {(config_key(t["config"]), t["config"].get("train.seed")) for t in trials if t["status"] == "completed"}
    return [
        {**config, "train.seed": seed}
        for _, config in top
        for seed in spec.confirm_seeds
        if (config_key(config), seed) not in done
    ]


def seeds_run(trials: list[dict]) -> set:
    return {t["config"].get("train.seed") for t in trials}


def summarise(spec: SweepSpec, results, max_epochs: int) -> list[dict]:
    """One record per trial of a Tune result grid: config, epochs, status, best validation scores, test scores."""
    trials = []
    for r in results:
        m = r.metrics or {}
        cfg = trial_overrides(r.config or {}, spec.seeds)  # variant names kept: they label the rows
        epochs = int(m.get("epoch", 0))
        status = "error" if r.error else ("pruned" if epochs < max_epochs else "completed")
        trials.append(
            {
                "trial_id": m.get("trial_id", Path(r.path).name),
                "config": cfg,
                "epochs": epochs,
                "best_epoch": m.get("best_epoch"),
                "status": status,
                "error": error_reason(r.error),
                "phase": "search",
                "seconds": m.get("seconds_total"),
                **{f"val_{k}": m.get(f"sel_val_{k}") for k in (*TABLE_METRICS, metric_names.base_name(spec.metric))},
                **{k: v for k, v in m.items() if k.startswith(("test_", "beam_val_"))},
                **{k: m[k] for k in (*COSTS, "params_total") if k in m},  # recall against size and speed
            }
        )
    return trials


def summary_of(spec: SweepSpec, trials: list[dict], resume_command: str = "") -> dict:
    """Trials sorted by score, the configurations' mean ± sd over seeds, the seed-noise verdict, the
    best trial (of the winning configuration when the verdict has one) and the compute spent.
    resume_command: the shell-quoted `--resume` command of this sweep, which the verdict extends with
    `--add-seeds` where more seeds would tell (by the spec's name without one)."""
    key = spec.metric
    # a trial that ended in error answers nothing, whatever it logged before failing
    scored = [
        t
        for t in trials
        if t.get("status") != "error" and isinstance(t.get(key), (int, float)) and not math.isnan(t[key])
    ]
    sign = 1 if spec.mode == "max" else -1
    scored.sort(key=lambda t: sign * t[key], reverse=True)
    groups = group_by_config(trials, key, spec.mode)
    resume = resume_command or shlex.join(["python", "-m", "vgs.sweep", spec.name, "--resume"])
    # the verdict fills in {add}; braces of a file name are escaped from that
    more = resume.replace("{", "{{").replace("}", "}}") + " --add-seeds {add} --top 2"
    judged = verdict(groups, spec.mode, spec.metric, spec.alpha, more)
    best = scored[0] if scored else None
    if judged.winner is not None:
        best = next(t for t in scored if config_key(t["config"]) == config_key(judged.winner.config))
    line = judged.line
    if not scored and trials:
        line = f"no trial completed: all {len(trials)} ended in error (see each trial's error above)"
    elif stuck := saturated([t[key] for t in scored], key, spec.mode):
        line = f"{stuck}; the verdict that follows cannot tell configurations apart: {line}"
    seconds = [t["seconds"] for t in trials if isinstance(t.get("seconds"), (int, float))]
    return {
        "sweep": spec.name,
        "metric": spec.metric,
        "mode": spec.mode,
        "trials": scored + [t for t in trials if t not in scored],
        "best": best,
        "configs": [
            {
                "config": g.config,
                "values": g.values,
                "mean": g.mean,
                "sd": g.sd,
                "seconds": statistics.fmean(g.seconds) if g.seconds else None,
            }
            for g in groups
        ],
        "configs_repeated": any(len(g.values) > 1 for g in groups),
        "pareto": pareto_sets(trials, key, spec.mode),
        "verdict": line,
        "beyond_noise": judged.beyond_noise,
        "best_group": [g.config for g in judged.tied] if judged.test else None,
        "test": None
        if judged.test is None
        else {
            "name": "Welch t-test",
            "p": judged.test.p,
            "ci95": list(judged.test.ci),
            "diff": judged.test.diff,
            "alpha": spec.alpha,
            "seeds_needed": judged.seeds_needed,
        },
        "compute": {
            "trials": len(trials),
            "trial_epochs": sum(t["epochs"] for t in trials),
            "trial_seconds": round(sum(seconds), 1),
            "core_seconds": round(sum(seconds) * spec.cpu * spec.workers, 1),
        },
    }


def parent_status(summary: dict) -> str:
    """The parent run's end: a sweep none of whose trials produced a score answered nothing, so
    FAILED (and the command exits 1), not FINISHED."""
    return "FINISHED" if summary.get("best") else "FAILED"
