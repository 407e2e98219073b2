"""A sweep's plan before launch (`python -m vgs.sweep NAME --dry-run [--json]`): every cell's
resolved configuration, model and size, training batches per task per epoch, and what the whole
sweep costs and asks Ray for.  Nothing trains and Ray does not start; the corpus is generated or
imported (and featurised) where it is not there yet, because batches are counted on it.
"""
from __future__ import annotations

import itertools
from typing import Any

import numpy as np

from vgs.config import Config, flatten
from vgs.searchspace import SweepSpec, trial_overrides, tune_concurrency


def sweep_cells(spec: SweepSpec) -> tuple[list[dict[str, Any]], str]:
    """The trial configs the sweep can run (searched keys + train.seed), and a note on how the
    search picks among them.  A continuous key cannot be enumerated: the cells are then the
    base configuration's point only, and the note says what Optuna samples instead."""
    continuous = [k for k, d in spec.space.items() if "choice" not in d]
    seeds = spec.seeds
    if continuous:
        note = (f"{', '.join(continuous)} continuous: Optuna samples {spec.num_samples} points x {len(seeds)} "
                f"seed(s); shown: the base configuration")
        return [{"train.seed": s} for s in seeds], note
    keys = list(spec.space)
    combos = [dict(zip(keys, values)) for values in itertools.product(*(spec.space[k]["choice"] for k in keys))]
    cells = [{**c, "train.seed": s} for c in combos for s in seeds]
    if spec.algorithm == "optuna" and spec.num_samples < len(combos):
        note = f"Optuna ({spec.sampler}) runs {spec.num_samples} of these {len(combos)} combinations x {len(seeds)} seed(s)"
    else:
        note = f"{len(combos)} combinations x {len(seeds)} seed(s), every one run"
    return cells, note


def plan_cell(cfg: Config, cache: dict) -> dict[str, Any]:
    """Model, parameters, epochs and training batches (per task, per phase) of one configuration."""
    import torch

    from vgs.data.prepare import prepare, resolve_paths
    from vgs.models.registry import build_model, count_params, model_name
    from vgs.log import quiet
    from vgs.schedules import training_phases
    from vgs.tasks import task_of
    from vgs.training_data import epoch_plan, training_data

    cfg.data = resolve_paths(cfg.data)
    key = repr(cfg.data)
    if key not in cache:
        with quiet():
            cache[key] = prepare(cfg.data)
    with quiet():
        td = training_data(cfg, cache[key])
    with torch.device("meta"):  # shapes only
        model = build_model(cfg.model, td.data.speech.dim, td.data.images.feature_dim,
                            len(td.vocab) if td.vocab else 0, cfg.train.epochs, td.max_chars)
    task = task_of(cfg.model)

    def objectives_at(epoch: int) -> tuple[str, ...]:
        return task.objectives_at(cfg.model, cfg.train.epochs, epoch)

    phases = []
    for first, last in training_phases(objectives_at, cfg.train.epochs):
        plan = epoch_plan(objectives_at(first), task.epoch_rule, td.splits, cfg, first,
                          np.random.default_rng([cfg.train.seed, first]))
        counts: dict[str, int] = {}
        samples = 0
        for objective, idx in plan:
            counts[objective] = counts.get(objective, 0) + 1
            samples += len(idx)
        phases.append({"epochs": [first, last], "batches_per_epoch": counts, "samples_per_epoch": samples})
    return {"model": model_name(cfg.model), "parameters": count_params(model), "epochs": cfg.train.epochs,
            "batches_per_epoch": phases[0]["batches_per_epoch"], "phases": phases,
            "samples": sum(p["samples_per_epoch"] * (p["epochs"][1] - p["epochs"][0] + 1) for p in phases)}


def plan_sweep(spec: SweepSpec, base: Config) -> dict[str, Any]:
    """The dry run of `spec` from its trial base config (vgs.sweep.trial_base)."""
    from vgs.config import apply_overrides

    cells, note = sweep_cells(spec)
    cache: dict = {}
    # by configuration: the first seed's plan stands for its others (batch counts follow the data;
    # a shuffle may drop one more lone-caption batch under another seed)
    plans: dict[str, dict] = {}
    out = []
    for cell in cells:
        overrides = trial_overrides(cell, spec.seeds, spec.variants)
        cfg = apply_overrides(base, overrides)
        key = repr({k: v for k, v in overrides.items() if k != "train.seed"})
        if key not in plans:
            plans[key] = plan_cell(apply_overrides(base, overrides), cache)
        out.append({"cell": cell, "varies": overrides, **plans[key], "config": flatten(cfg)})
    combos = len(out) // max(1, len(spec.seeds))
    enumerable = all("choice" in d for d in spec.space.values())
    if enumerable and (spec.algorithm == "grid" or spec.num_samples >= combos):
        trials = len(out)  # every cell runs
    else:
        trials = spec.num_samples * len(spec.seeds)
    confirm = spec.confirm_top * len(spec.confirm_seeds)
    epochs = max((c["epochs"] for c in out), default=0)
    samples = max((c["samples"] for c in out), default=0)
    every_cell = trials == len(out)
    return {"sweep": spec.name, "note": note, "cells": out,
            "cost": {"trials": trials, "confirm_trials_at_most": confirm,
                     "trial_epochs_at_most": (sum(c["epochs"] for c in out) if every_cell else trials * epochs)
                     + confirm * epochs,
                     "samples_at_most": (sum(c["samples"] for c in out) if every_cell else trials * samples)
                     + confirm * samples,
                     "pruning": spec.scheduler.get("type", "none")},
            "resources": {"cpu_per_worker": spec.cpu, "gpu_per_worker": spec.gpu, "workers_per_trial": spec.workers,
                          "max_concurrent_trials": tune_concurrency(spec)}}


def format_plan(plan: dict[str, Any]) -> str:
    from vgs.sweep import _markdown

    rows: dict[str, list[str]] = {}  # one row per configuration, its seeds together
    for c in plan["cells"]:
        varies = ", ".join(f"{k}={v}" for k, v in c["varies"].items() if k != "train.seed") or "(base)"
        phases = "; ".join(f"ep {p['epochs'][0]}-{p['epochs'][1]}: " +
                           " ".join(f"{t} {n}" for t, n in p["batches_per_epoch"].items()) for p in c["phases"])
        seed = str(c["config"].get("train.seed", ""))
        if varies in rows:
            rows[varies][1] += f",{seed}"
        else:
            rows[varies] = [varies, seed, c["model"], f"{c['parameters'] / 1e6:.2f} M", str(c["epochs"]), phases]
    cost, res = plan["cost"], plan["resources"]
    lines = [f"sweep '{plan['sweep']}' (dry run: nothing trains): {plan['note']}", "",
             _markdown(["configuration (resolved overrides)", "seeds", "model", "parameters", "epochs",
                        "training batches per epoch"], list(rows.values())),
             "",
             f"cost: {cost['trials']} trials, at most {cost['trial_epochs_at_most']} trial-epochs and "
             f"{cost['samples_at_most']:,} training samples (pruning: {cost['pruning']}"
             + (f"; a confirmation phase adds up to {cost['confirm_trials_at_most']} trials" if cost["confirm_trials_at_most"] else "")
             + ")",
             f"asks Ray for {res['cpu_per_worker']:g} CPU and {res['gpu_per_worker']:g} GPU per worker, "
             f"{res['workers_per_trial']} worker(s) per trial"
             + (f", at most {res['max_concurrent_trials']} trials at once" if res["max_concurrent_trials"] else "")]
    return "\n".join(lines)
