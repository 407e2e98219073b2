"""A sweep's plan before launch (`python -m vgs.sweep NAME --dry-run [--json] [--bench FILE]`):
every cell's resolved configuration, model and size, training batches per objective per epoch, the disk
its feature stores take, and what the whole sweep costs in trial-epochs, samples and GPU-hours and
asks Ray for.  Nothing trains and Ray does not start; the corpus is generated or imported (and
featurised) where it is not there yet, because batches are counted on it: that work, its size
estimate and its progress are logged on stderr, the plan alone goes to stdout.

GPU-hours come from one measured step rate: the paper model's (DG3A1024 + DenseNet-264 at 224x224,
batch 64) training samples per second, from `vgs bench --json FILE` on the user's GPU, or by
default the reference step's figure on one H100 (DESIGN.md).  A cell's rate is that rate scaled by
the paper model's parameter count over the cell's: a rough guide (a GRU costs about the same per
parameter per frame as the reference's, a convolution more, precomputed image features almost
nothing).  Validation, testing and decoding are priced apart, more roughly (evaluation_hours).
"""

from __future__ import annotations

import itertools
import json
from pathlib import Path
from typing import Any

import numpy as np

from vgs.config import Config, ConfigError, apply_overrides, base_config, flatten
from vgs.data.featurisers import SAMPLE_RATE, preset_dim
from vgs.data.prepare import prepare, resolve_paths
from vgs.log import quiet
from vgs.models.ssl import UPSTREAMS, cached, featuriser_for
from vgs.results.tables import markdown
from vgs.schedules import training_phases
from vgs.search_spaces.checks import tune_concurrency
from vgs.search_spaces.model import DEFAULT_MAX_TRIALS, SweepSpec, grid_size, trial_overrides

# The reference step of ../shared/bench/reference_step.py, DG3A1024 + DenseNet-264 together, batch 64,
# on one H100 (DESIGN.md, "Performance anchors"): the default when no `vgs bench --json` file is given.
DEFAULT_RATE = {
    "samples_per_s": 150.0,
    "device": "NVIDIA H100 (one GPU)",
    "source": "default: the reference step's joint DG3A1024 + DenseNet-264 rate on one H100 "
    "(DESIGN.md), not a vgs measurement; pass --bench FILE from `vgs bench --json FILE` "
    "on your GPU",
}


def step_rate(bench: str | None) -> dict[str, Any]:
    """The paper model's training rate the plan is priced at: a `vgs bench --json` file's
    configs.paper.vgs_joint (samples/s) and device, or DEFAULT_RATE."""
    if not bench:
        return dict(DEFAULT_RATE)
    path = Path(bench).expanduser()
    try:
        measured = json.loads(path.read_text())
        rate = float(measured["configs"]["paper"]["vgs_joint"])
    except FileNotFoundError:
        raise ConfigError(f"--bench {bench}: no such file") from None
    except (ValueError, KeyError, TypeError) as e:
        raise ConfigError(
            f"--bench {bench}: not a `vgs bench --json` file with the paper model's rate "
            f"(configs.paper.vgs_joint; run `vgs bench --configs paper --json FILE` on the GPU): "
            f"{type(e).__name__} {e}"
        ) from None
    if rate <= 0:
        raise ConfigError(f"--bench {bench}: configs.paper.vgs_joint must be > 0, got {rate}")
    return {
        "samples_per_s": rate,
        "device": str(measured.get("device", "?")),
        "source": f"measured: {path} (vgs bench, {measured.get('amp', '?')} precision)",
    }


def reference_parameters() -> int:
    """Trainable parameters of the model the step rate is measured on (the `paper` base)."""
    import torch

    from vgs.models.registry import count_params
    from vgs.tasks.factory import build_model

    cfg = base_config("paper")
    with torch.device("meta"):
        return count_params(build_model(cfg.model, preset_dim(cfg.data.features)))


def gpu_hours(samples: int, parameters: int, rate: dict[str, Any], reference: int) -> float:
    """Training samples priced at the rate scaled by parameters (see the module's docstring)."""
    per_second = rate["samples_per_s"] * reference / max(parameters, 1)
    return samples / per_second / 3600


def store_files(prepared) -> dict[str, int]:
    """{file: bytes} of a prepared corpus's MFCC and image stores."""
    return {str(p): Path(p).stat().st_size for p in (prepared.speech.path, prepared.images.path) if Path(p).is_file()}


def sweep_cells(spec: SweepSpec) -> tuple[list[dict[str, Any]], str]:
    """The trial configs the sweep can run (searched keys + train.seed), and a note on how the
    search picks among them.  A continuous key cannot be enumerated: the cells are then the
    base configuration's point only, and the note says what Optuna samples instead."""
    continuous = [k for k, d in spec.space.items() if "choice" not in d]
    seeds = spec.seeds
    size = grid_size(spec)
    if spec.algorithm == "optuna" and size * len(seeds) > (spec.max_trials or DEFAULT_MAX_TRIALS):
        # the plan's cost stays proportional to what it prints: the sampled points are unknown
        # until Optuna draws them, and listing every combination would take minutes
        note = (
            f"Optuna ({spec.sampler}) samples {spec.num_samples} of {size} combinations x {len(seeds)} seed(s); "
            f"shown: the base configuration"
        )
        return [{"train.seed": s} for s in seeds], note
    if continuous:
        note = (
            f"{', '.join(continuous)} continuous: Optuna samples {spec.num_samples} points x {len(seeds)} "
            f"seed(s); shown: the base configuration"
        )
        return [{"train.seed": s} for s in seeds], note
    keys = list(spec.space)
    combos = [dict(zip(keys, values)) for values in itertools.product(*(spec.space[k]["choice"] for k in keys))]
    cells = [{**c, "train.seed": s} for c in combos for s in seeds]
    if spec.algorithm == "optuna" and spec.num_samples < len(combos):
        note = (
            f"Optuna ({spec.sampler}) runs {spec.num_samples} of these {len(combos)} combinations "
            f"x {len(seeds)} seed(s)"
        )
    else:
        note = f"{len(combos)} combinations x {len(seeds)} seed(s), every one run"
    return cells, note


def plan_cell(cfg: Config, cache: dict) -> dict[str, Any]:
    """Model, parameters, epochs and training batches (per objective, per phase) of one configuration."""
    import torch

    from vgs.models.registry import count_params
    from vgs.tasks import task_of
    from vgs.tasks.factory import build_model, model_name
    from vgs.training_data import epoch_plan, training_data

    cfg.data = resolve_paths(cfg.data)
    speech = featuriser_for(cfg)
    frozen_ssl = cached(cfg.model.speech.frontend)  # its cache is priced, not built: the MFCC store counts
    key = repr((cfg.data, None if frozen_ssl else speech.params()))
    if key not in cache:  # not quiet: building missing stores can take long, and says so (on stderr)
        cache[key] = prepare(cfg.data, speech=None if frozen_ssl else speech)
    with quiet():
        td = training_data(cfg, cache[key])
    stores = store_files(cache[key])
    featurising = featurisation(cfg, cache[key]) if frozen_ssl else None
    with torch.device("meta"):  # shapes only
        model = build_model(
            cfg.model,
            speech.dim,
            td.data.images.feature_dim,
            len(td.vocab) if td.vocab else 0,
            cfg.train.epochs,
            td.max_chars,
            weights=False,
        )
    task = task_of(cfg.model)

    def objectives_at(epoch: int) -> tuple[str, ...]:
        return task.objectives_at(cfg.model, cfg.train.epochs, epoch)

    phases = []
    for first, last in training_phases(objectives_at, cfg.train.epochs):
        objectives = objectives_at(first)
        splits = task.planned_splits(cfg.model, td.splits, objectives)  # e.g. pipe-seq's decoded speech
        plan = epoch_plan(
            objectives, task.epoch_rule, splits, cfg, first, np.random.default_rng([cfg.train.seed, first])
        )
        counts: dict[str, int] = {}
        samples = 0
        for objective, idx in plan:
            counts[objective] = counts.get(objective, 0) + 1
            samples += len(idx)
        phases.append({"epochs": [first, last], "batches_per_epoch": counts, "samples_per_epoch": samples})
    return {
        "model": model_name(cfg.model),
        "parameters": count_params(model),
        "epochs": cfg.train.epochs,
        "batches_per_epoch": phases[0]["batches_per_epoch"],
        "phases": phases,
        "samples": sum(p["samples_per_epoch"] * (p["epochs"][1] - p["epochs"][0] + 1) for p in phases),
        "batch_size": cfg.train.batch_size,
        "schedule": f"{cfg.train.scheduler} {cfg.train.lr:g}",
        "evaluation": evaluation_work(cfg, td, task),
        "store_bytes": sum(stores.values()),
        "store_files": stores,
        "featurisation": featurising,
        "image_side": "features" if td.data.images.feature_dim else "pixels",
        # Mortazavi 2020's warm second run: the last epochs start again from the best checkpoint
        "warm_restart": None
        if not cfg.train.restart_epochs
        else {
            "epochs": [cfg.train.epochs - cfg.train.restart_epochs + 1, cfg.train.epochs],
            "lr": cfg.train.lr * cfg.train.restart_lr_factor,
            "from": "the best checkpoint so far",
        },
    }


def evaluation_work(cfg: Config, td, task) -> dict[str, int]:
    """What a run's evaluation costs beside training: forward passes (a caption or an image embedded)
    and decoded captions times their beam width, over every epoch's validation (with the training
    sample and the test split where asked), the end's test split and wide-beam validation, and
    pipe-seq's decoding of the training speech."""
    epochs, asr = cfg.train.epochs, cfg.model.asr
    test = [u for u in td.data.corpus.split("test") if u.id in td.data.speech.index]
    test_items = len(test) + len({u.image for u in test})
    per_epoch = len(td.val) + len(td.val.image_names) + (test_items if cfg.train.test_every_epoch else 0)
    if td.train_sample is not None:
        per_epoch += len(td.train_sample) + len(td.train_sample.image_names)
    forward = per_epoch * epochs + (test_items if cfg.train.test_at_end else 0)
    decoded = 0
    if task.decodes:
        val = len(td.val) if task.queries_decode else len(td.val.text_captions)
        decoded = val * asr.val_beam * epochs
        if cfg.train.test_at_end:
            decoded += len(test) * asr.beam + (val * asr.beam if asr.beam != asr.val_beam else 0)
        if task.planned_splits(cfg.model, td.splits, ("t2i",)) is not td.splits:  # pipe-seq decodes its training speech
            decoded += len(next(iter(td.splits.values()))) * asr.beam
    return {"forward": forward, "decoded": decoded}


def evaluation_hours(work: dict[str, int], parameters: int, rate: dict[str, Any], reference: int) -> float:
    """A rough price of evaluation_work: a forward pass at a third of a training sample (no backward),
    a decoded caption per beam at one (its steps run one after another)."""
    return gpu_hours(work["forward"] // 3 + work["decoded"], parameters, rate, reference)


# Seconds of audio one GPU turns into an SSL model's hidden states per second (bf16, one recording at a
# time), by size.  Stated, not yet measured: `python -m vgs.tools.gpu_check` times a base model; on a
# CPU, one 3-s clip takes about 1 s of one thread for a base model (DESIGN.md).
SSL_REALTIME = {768: 500.0, 1024: 170.0}
SSL_FRAMES_PER_S = 50


def featurisation(cfg: Config, prepared) -> dict[str, Any]:
    """What a frozen SSL front-end's cache costs to compute once for the corpus: GPU-hours at the
    stated rate, and its disk (fp16, 50 frames a second, the read states' width)."""
    fe = cfg.model.speech.frontend
    speech = featuriser_for(cfg)
    store = prepared.speech
    seconds = float(store.lengths.sum()) * store.hop / SAMPLE_RATE
    rate = SSL_REALTIME.get(UPSTREAMS[fe.arch].dim, SSL_REALTIME[1024])
    return {
        "front_end": speech.name,
        "hours_of_speech": round(seconds / 3600, 2),
        "gpu_hours": round(seconds / rate / 3600, 2),
        "disk_bytes": int(seconds * SSL_FRAMES_PER_S * speech.dim * 2),
        "rate": f"{rate:g}x real time on one GPU (stated, not measured)",
    }


def plan_sweep(spec: SweepSpec, base: Config, rate: dict[str, Any] | None = None) -> dict[str, Any]:
    """The dry run of `spec` from its trial base config (vgs.sweep.trial_base), priced in GPU-hours
    at `rate` (step_rate; default DEFAULT_RATE)."""

    rate = rate or dict(DEFAULT_RATE)
    reference = reference_parameters()
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
        hours = gpu_hours(plans[key]["samples"], plans[key]["parameters"], rate, reference)
        evaluating = evaluation_hours(plans[key]["evaluation"], plans[key]["parameters"], rate, reference)
        out.append(
            {
                "cell": cell,
                "varies": overrides,
                **plans[key],
                "gpu_hours": round(hours, 2),
                "gpu_hours_evaluation": round(evaluating, 2),
                "config": flatten(cfg),
            }
        )
    combos = len(out) // max(1, len(spec.seeds))
    enumerable = len(out) == grid_size(spec) * len(spec.seeds)  # every combination is listed
    if enumerable and (spec.algorithm == "grid" or spec.num_samples >= combos):
        trials = len(out)  # every cell runs
    else:
        trials = spec.num_samples * len(spec.seeds)
    confirm = spec.confirm_top * len(spec.confirm_seeds)
    epochs = max((c["epochs"] for c in out), default=0)
    samples = max((c["samples"] for c in out), default=0)
    every_cell = trials == len(out)

    def total(key: str) -> float:
        most = max((c[key] for c in out), default=0)
        return (sum(c[key] for c in out) if every_cell else trials * most) + confirm * most

    hours, evaluating = total("gpu_hours"), total("gpu_hours_evaluation")
    stores = {f: n for c in out for f, n in c["store_files"].items()}  # each store once
    caches = {c["featurisation"]["front_end"]: c["featurisation"] for c in out if c.get("featurisation")}
    return {
        "sweep": spec.name,
        "size": spec.size,
        "reproduces": spec.reproduces,
        "note": note,
        "cells": out,
        "rate": {**rate, "reference_parameters": reference},
        "gpu_hours_at_most": round(hours, 1),
        "gpu_hours_evaluation_at_most": round(evaluating, 1),
        "store_bytes": sum(stores.values()),
        "featurisation": list(caches.values()),
        "cost": {
            "trials": trials,
            "confirm_trials_at_most": confirm,
            "trial_epochs_at_most": (sum(c["epochs"] for c in out) if every_cell else trials * epochs)
            + confirm * epochs,
            "samples_at_most": (sum(c["samples"] for c in out) if every_cell else trials * samples) + confirm * samples,
            "pruning": spec.scheduler.get("type", "none"),
        },
        "resources": {
            "cpu_per_worker": spec.cpu,
            "gpu_per_worker": spec.gpu,
            "workers_per_trial": spec.workers,
            "max_concurrent_trials": tune_concurrency(spec),
        },
    }


def _size(n: int) -> str:
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if n < 1024 or unit == "TiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} TiB"


def format_plan(plan: dict[str, Any]) -> str:

    rows: dict[str, list[str]] = {}  # one row per configuration, its seeds together
    for c in plan["cells"]:
        varies = ", ".join(f"{k}={v}" for k, v in c["varies"].items() if k != "train.seed") or "(base)"
        phases = "; ".join(
            f"ep {p['epochs'][0]}-{p['epochs'][1]}: " + " ".join(f"{t} {n}" for t, n in p["batches_per_epoch"].items())
            for p in c["phases"]
        )
        if c.get("warm_restart"):
            w = c["warm_restart"]
            phases += f"; ep {w['epochs'][0]}-{w['epochs'][1]} again from the best epoch at lr {w['lr']:g}"
        seed = str(c["config"].get("train.seed", ""))
        if varies in rows:
            rows[varies][1] += f",{seed}"
        else:
            rows[varies] = [
                varies,
                seed,
                c["model"],
                f"{c['parameters'] / 1e6:.2f} M",
                f"{c['batch_size']}, {c['schedule']}",
                str(c["epochs"]),
                phases,
                f"{c['gpu_hours']:.2f} + {c['gpu_hours_evaluation']:.2f}",
            ]
    cost, res = plan["cost"], plan["resources"]
    size = f" at {plan['size']} size" if plan.get("size") else ""
    lines = [
        f"sweep '{plan['sweep']}'{size} (dry run: nothing trains): {plan['note']}",
        "",
        markdown(
            [
                "configuration (resolved overrides)",
                "seeds",
                "model",
                "parameters",
                "batch, schedule and lr",
                "epochs",
                "training batches per epoch",
                "GPU-h per seed (training + evaluation)",
            ],
            list(rows.values()),
        ),
        "",
        f"cost: {cost['trials']} trials, at most {cost['trial_epochs_at_most']} trial-epochs and "
        f"{cost['samples_at_most']:,} training samples (pruning: {cost['pruning']}"
        + (
            f"; a confirmation phase adds up to {cost['confirm_trials_at_most']} trials"
            if cost["confirm_trials_at_most"]
            else ""
        )
        + ")",
        f"GPU time: at most {plan['gpu_hours_at_most']:,.1f} GPU-hours of training and "
        f"{plan['gpu_hours_evaluation_at_most']:,.1f} of validation, testing and decoding at "
        f"{plan['rate']['samples_per_s']:g} samples/s for the paper model "
        f"({plan['rate']['reference_parameters'] / 1e6:.1f} M parameters) on {plan['rate']['device']}, scaled by "
        f"each cell's parameters (evaluation roughly: a forward pass at a third of a training sample, a "
        f"decoded caption per beam at one); {plan['rate']['source']}",
        f"disk: the feature stores (MFCC and images) take {_size(plan['store_bytes'])}",
        *[
            f"featurisation: {f['front_end']} states of {f['hours_of_speech']:g} h of speech, computed once: "
            f"{f['gpu_hours']:g} GPU-hours at {f['rate']}, {_size(f['disk_bytes'])} of fp16 cache"
            for f in plan.get("featurisation", [])
        ],
        f"asks Ray for {res['cpu_per_worker']:g} CPU and {res['gpu_per_worker']:g} GPU per worker, "
        f"{res['workers_per_trial']} worker(s) per trial"
        + (f", at most {res['max_concurrent_trials']} trials at once" if res["max_concurrent_trials"] else ""),
    ]
    return "\n".join(lines)
