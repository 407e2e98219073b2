"""A sweep's spec as data: the SweepSpec dataclass, the names a search-space YAML may use, and a
trial's overrides from its Tune config."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from vgs import metric_names
from vgs.config import Config, ConfigError, apply_overrides, base_config

DISTRIBUTIONS = ("choice", "uniform", "loguniform", "randint")

PRUNING_SCHEDULERS = ("asha", "halving")  # both stop trials on the epoch counter

SCHEDULERS = (*PRUNING_SCHEDULERS, "none")

TOP_KEYS = (
    "description",
    "base",
    "overrides",
    "variants",
    "space",
    "search",
    "scheduler",
    "metric",
    "mode",
    "seeds",
    "resources",
    "max_concurrent",
    "confirm",
    "sizes",
    "alpha",
)

SIZES = ("cpu", "paper")

DEFAULT_SIZE = "cpu"  # a laptop runs it; --size paper is the paper's own setup (GPUs)

# what a size may set: its base, overrides, per-variant overrides, and how it runs
SIZE_KEYS = (
    "reproduces",
    "base",
    "overrides",
    "variants",
    "scheduler",
    "resources",
    "max_concurrent",
    "seeds",
    "confirm",
)

# s2i/i2s: speech queries; t2i/i2t: text-image; s2t: mtl-match; r10: the family's own query->image R@10
METRICS = metric_names.SELECTABLE

VARIANT_PREFIX = "variant."


@dataclass
class SweepSpec:
    name: str
    path: Path
    description: str = ""
    base: str = "cpu-small"
    overrides: dict[str, Any] = field(default_factory=dict)
    # Named bundles of overrides, searched as one categorical key per group ("variant.GROUP"):
    # for spaces whose keys depend on each other (a family and its own layer counts).
    variants: dict[str, dict[str, dict[str, Any]]] = field(default_factory=dict)
    space: dict[str, dict[str, list]] = field(default_factory=dict)
    algorithm: str = "optuna"
    num_samples: int = 1
    search_seed: int = 0
    # Optuna sampler: tpe; random; bruteforce (never repeats a combination: small choice spaces)
    sampler: str = "tpe"
    max_trials: int = 0  # refuse a search of more trials than this (search.max_trials / --max-trials)
    scheduler: dict[str, Any] = field(default_factory=lambda: {"type": "none"})
    metric: str = "val_s2i_r10"
    mode: str = "max"
    seeds: list[int] = field(default_factory=lambda: [0])
    # Per trial worker; workers > 1 makes each trial a Ray Train run of that many DDP workers.
    cpu: float = 1.0
    gpu: float = 0.0
    workers: int = 1
    max_concurrent: int = 0
    # Confirmation phase: the `confirm_top` best configurations of the search, each run with every
    # seed of `confirm_seeds` to the full budget (trials the search already completed are reused).
    confirm_top: int = 0
    confirm_seeds: list[int] = field(default_factory=list)
    # significance level of the verdict's Welch t-tests (vgs.results.verdict)
    alpha: float = 0.05
    # The size that runs (sizes: in the YAML; "" for a space of one size), what it reproduces, and
    # the sizes the YAML holds.
    size: str = ""
    reproduces: str = ""
    sizes: tuple[str, ...] = ()

    def base_config(self, extra: dict[str, Any] | None = None, cell: dict[str, Any] | None = None) -> Config:
        """The base config with the spec's overrides, `extra` (the command line's) and `cell` (one
        cell's own keys: its variants and searched values) on top.  A model.* key that the cell's
        family does not read is refused; where the sweep's cells choose the family, a key of the
        spec's overrides or of `extra` must be read by at least one of the cells' families (the
        others ignore it), while a cell's own keys must be read by its family."""
        from vgs.tasks import check_family_keys

        shared, cell = {**self.overrides, **(extra or {})}, dict(cell or {})
        cfg = apply_overrides(base_config(self.base), {**shared, **cell})
        families = self.families()
        if "model.family" in shared or len(families) == 1:
            check_family_keys(cfg.model, {**shared, **cell})
        else:
            check_family_keys(cfg.model, shared, families)
            check_family_keys(cfg.model, cell, None if "model.family" in cell else families)
        return cfg

    def families(self) -> set[str]:
        """Every model.family a cell of the sweep may have."""
        found = {
            apply_overrides(
                base_config(self.base), {k: v for k, v in self.overrides.items() if k == "model.family"}
            ).model.family
        }
        for named in self.variants.values():
            found.update(o["model.family"] for o in named.values() if "model.family" in o)
        dist = self.space.get("model.family")
        if isinstance(dist, dict) and isinstance(dist.get("choice"), list):
            found.update(map(str, dist["choice"]))
        return found


def trial_overrides(
    config: dict[str, Any], seeds: list[int], variants: dict[str, dict[str, dict[str, Any]]] | None = None
) -> dict[str, Any]:
    """A Tune trial's config -> the dotted overrides it stands for (Repeater's index -> seed;
    with `variants`, each chosen variant.GROUP name is replaced by its overrides)."""
    overrides = {k: v for k, v in config.items() if not k.startswith("__")}
    if "__trial_index__" in config:
        overrides["train.seed"] = seeds[config["__trial_index__"] % len(seeds)]
    if variants is not None:
        for key in [k for k in overrides if k.startswith(VARIANT_PREFIX)]:
            chosen = overrides.pop(key)
            overrides.update(variants[key[len(VARIANT_PREFIX) :]][chosen])
    return overrides


def space_contains(dist: dict[str, list], value: Any) -> bool:
    """Whether a value lies in one space entry ({choice: [...]} or {kind: [low, high]})."""
    kind, values = next(iter(dist.items()))
    return value in values if kind == "choice" else min(values) <= value <= max(values)


DEFAULT_MAX_TRIALS = 2000  # a search of more trials is refused unless the user raises the limit


def grid_size(spec: SweepSpec) -> int:
    """How many combinations the space's choice lists make (counted, never built); 0 where a key is
    continuous."""
    if any("choice" not in d for d in spec.space.values()):
        return 0
    return math.prod(len(d["choice"]) for d in spec.space.values())


def sampler_settings(sampler: str, seed: int) -> dict[str, Any]:
    """Every setting of the Optuna sampler a sweep uses, stated rather than left to the installed
    Optuna's defaults (Optuna 5 made multivariate TPE the single-objective default and constant_liar
    True); recorded on the parent run.
    - tpe: the first n_startup_trials configurations are drawn at random, then each is drawn where
      the best scores so far lie (multivariate: the keys jointly).  With several seeds per
      configuration (Repeater) it learns from their mean; a pruned trial counts by its last score.
      constant_liar: a configuration still running counts as a poor one, so parallel trials spread out.
    - random: independent draws; the seed fixes them.
    - bruteforce: each combination of the choices once, in an order the seed fixes."""
    if sampler == "tpe":
        return {"seed": seed, "n_startup_trials": 10, "multivariate": True, "constant_liar": True, "group": False}
    return {"seed": seed}


def expected_trials(spec: SweepSpec) -> int:
    """How many trials the sweep's first phase creates: every configuration with every seed."""
    if spec.algorithm == "optuna":
        return spec.num_samples * len(spec.seeds)
    return grid_size(spec) * len(spec.seeds)


def check_size(spec: SweepSpec) -> None:
    """Refuse a search larger than spec.max_trials before anything is built (a 10^6-cell grid took
    minutes and gigabytes to enumerate), naming the count and how to raise the limit."""
    trials = expected_trials(spec)
    if spec.max_trials and trials > spec.max_trials:
        what = (
            f"{spec.num_samples} Optuna samples"
            if spec.algorithm == "optuna"
            else " x ".join(str(len(d["choice"])) for d in spec.space.values()) + " grid cells"
        )
        raise ConfigError(
            f"{spec.path}: sweep '{spec.name}' would run {trials} trials ({what} x {len(spec.seeds)} seed(s)), over "
            f"search.max_trials = {spec.max_trials}. Narrow it (--pick KEY=A,B, --samples N) or raise the limit: "
            f"--max-trials {trials} (or search: {{max_trials: {trials}}} in the YAML)"
        )
