"""Search-space YAML files (`vgs/search_spaces/NAME.yaml`, shipped in the package): loading and validation.

    description: what the sweep asks
    base: cpu-small                 # named base config (vgs.config.BASE_CONFIGS)
    overrides: {train.epochs: 6}    # dotted paths applied to the base
    space:                          # dotted paths searched
      model.speech.layers: {choice: [1, 2, 3]}
      train.lr: {loguniform: [1.0e-4, 3.0e-3]}
    search: {algorithm: optuna, num_samples: 6, seed: 0, sampler: tpe}   # or {algorithm: grid}
    scheduler: {type: asha, grace_period: 1, reduction_factor: 2}   # or {type: halving, ...} or {type: none}
    metric: val_s2i_r10
    mode: max
    seeds: [0]
    resources: {cpu: 1, gpu: 0}
    max_concurrent: 2               # 0: as many as the cluster fits
    confirm: {top: 2, seeds: [0, 1]}  # then run the best 2 configurations with each of these seeds
                                      # to the full budget (no pruning), for the seed-noise verdict

A space that reproduces a paper's table holds both of its sizes, and `--size cpu|paper` picks one
(cpu by default: it runs on a laptop; paper is the paper's own setup, for GPUs):

    sizes:
      cpu:   {base: cpu-text, overrides: {...}, variants: {model: {'pipe-seq/*': {train.epochs: 8}}}}
      paper: {reproduces: "Higy et al. 2020 Tables 1-2", base: seed003, overrides: {...},
              scheduler: {type: none}, resources: {cpu: 4, gpu: 1}}

A size's base replaces the top-level one; its overrides go on top of the top-level overrides; its
variants entries (GROUP -> name pattern -> overrides) go on top of every variant whose name
matches; scheduler, resources, max_concurrent, seeds and confirm replace the top-level ones.
Nothing of one size reaches the other.
"""
from __future__ import annotations

import fnmatch
import itertools
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from vgs import metric_names
from vgs.config import Config, ConfigError, apply_overrides, base_config, check_consistent, coerce, key_type

DISTRIBUTIONS = ("choice", "uniform", "loguniform", "randint")
PRUNING_SCHEDULERS = ("asha", "halving")  # both stop trials on the epoch counter
SCHEDULERS = (*PRUNING_SCHEDULERS, "none")
TOP_KEYS = ("description", "base", "overrides", "variants", "space", "search", "scheduler", "metric", "mode",
            "seeds", "resources", "max_concurrent", "confirm", "sizes", "alpha")
SIZES = ("cpu", "paper")
DEFAULT_SIZE = "cpu"  # a laptop runs it; --size paper is the paper's own setup (GPUs)
# what a size may set: its base, overrides, per-variant overrides, and how it runs
SIZE_KEYS = ("reproduces", "base", "overrides", "variants", "scheduler", "resources", "max_concurrent", "seeds",
             "confirm")
# s2i/i2s: speech queries; t2i/i2t: text-image; s2t: mtl-match; r10: the family's own query->image R@10
METRICS = metric_names.SELECTABLE
VARIANT_PREFIX = "variant."
PACKAGE_SPACES = Path(__file__).resolve().parent / "search_spaces"
# the size of each torchvision model's penultimate features (vgs.tools.extract_image_features)
FEATURE_DIMS = {"resnet18": 512, "resnet34": 512, "resnet50": 2048, "resnet101": 2048, "resnet152": 2048,
                "vgg16": 4096, "vgg19": 4096}


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
    # significance level of the verdict's Welch t-tests (vgs.verdict)
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
        found = {apply_overrides(base_config(self.base), {k: v for k, v in self.overrides.items()
                                                          if k == "model.family"}).model.family}
        for named in self.variants.values():
            found.update(o["model.family"] for o in named.values() if "model.family" in o)
        dist = self.space.get("model.family")
        if isinstance(dist, dict) and isinstance(dist.get("choice"), list):
            found.update(map(str, dist["choice"]))
        return found


def trial_overrides(config: dict[str, Any], seeds: list[int],
                    variants: dict[str, dict[str, dict[str, Any]]] | None = None) -> dict[str, Any]:
    """A Tune trial's config -> the dotted overrides it stands for (Repeater's index -> seed;
    with `variants`, each chosen variant.GROUP name is replaced by its overrides)."""
    overrides = {k: v for k, v in config.items() if not k.startswith("__")}
    if "__trial_index__" in config:
        overrides["train.seed"] = seeds[config["__trial_index__"] % len(seeds)]
    if variants is not None:
        for key in [k for k in overrides if k.startswith(VARIANT_PREFIX)]:
            chosen = overrides.pop(key)
            overrides.update(variants[key[len(VARIANT_PREFIX):]][chosen])
    return overrides


def space_contains(dist: dict[str, list], value: Any) -> bool:
    """Whether a value lies in one space entry ({choice: [...]} or {kind: [low, high]})."""
    kind, values = next(iter(dist.items()))
    return value in values if kind == "choice" else min(values) <= value <= max(values)


def search_space_dirs() -> list[Path]:
    dirs = [Path(p) for p in os.environ.get("VGS_SEARCH_SPACES", "").split(os.pathsep) if p]
    # VGS_SEARCH_SPACES, then ./search_spaces (a user's own), then the package's (vgs/search_spaces,
    # package data: an installed wheel has them too)
    return dirs + [Path.cwd() / "search_spaces", PACKAGE_SPACES]


def available() -> list[str]:
    return sorted({p.stem for d in search_space_dirs() if d.is_dir() for p in d.glob("*.yaml")})


def find(name: str) -> Path:
    if name.endswith((".yaml", ".yml")):
        if Path(name).is_file():
            return Path(name).resolve()
        raise ConfigError(f"search-space file not found: {name}")
    for d in search_space_dirs():
        if (d / f"{name}.yaml").is_file():
            return (d / f"{name}.yaml").resolve()
    raise ConfigError(f"unknown sweep '{name}'; available: {', '.join(available()) or '(none found)'}")


def load(name: str, size: str | None = None) -> SweepSpec:
    """The search space NAME at `size` (None: the default size where the YAML has sizes)."""
    path = find(name)
    try:
        raw = yaml.safe_load(path.read_text())
    except yaml.YAMLError as e:
        raise ConfigError(f"{path}: invalid YAML: {e}") from e
    return parse(raw, path, size)


def paper_sized() -> list[str]:
    """The named sweeps that have a paper size."""
    out = []
    for name in available():
        try:
            raw = yaml.safe_load(find(name).read_text())
        except (yaml.YAMLError, ConfigError):
            continue
        if isinstance(raw, dict) and isinstance(raw.get("sizes"), dict) and "paper" in raw["sizes"]:
            out.append(name)
    return out


def sized(raw: dict, where: str, size: str | None) -> tuple[dict, str, str, tuple[str, ...]]:
    """(the YAML with one size's settings applied, that size, what it reproduces, the sizes it has)."""
    sizes = raw.get("sizes")
    if sizes is None:
        if size is not None:
            raise ConfigError(f"{where}: this sweep has one size (no 'sizes:' section), so --size does not apply; "
                              f"the sweeps with a paper size: {', '.join(paper_sized()) or '(none)'}")
        return raw, "", "", ()
    if not (isinstance(sizes, dict) and sizes and set(sizes) <= set(SIZES)
            and all(isinstance(v, dict) for v in sizes.values())):
        raise ConfigError(f"{where}: 'sizes' must map {' and/or '.join(SIZES)} to a mapping of {', '.join(SIZE_KEYS)}")
    chosen = size or (DEFAULT_SIZE if DEFAULT_SIZE in sizes else next(iter(sizes)))
    if chosen not in sizes:
        raise ConfigError(f"{where}: no size '{chosen}'; this sweep has {', '.join(sizes)}")
    own = sizes[chosen]
    bad = sorted(set(own) - set(SIZE_KEYS))
    if bad:
        raise ConfigError(f"{where}: unknown key(s) sizes.{chosen}.{', '.join(bad)}; allowed: {', '.join(SIZE_KEYS)}")
    out = {k: v for k, v in raw.items() if k != "sizes"}
    for key in ("base", "scheduler", "resources", "max_concurrent", "seeds", "confirm"):
        if key in own:
            out[key] = own[key]
    out["overrides"] = {**(raw.get("overrides") or {}), **(own.get("overrides") or {})}
    out["variants"] = _sized_variants(raw.get("variants"), own.get("variants"), f"{where}: sizes.{chosen}")
    return out, chosen, str(own.get("reproduces", "")), tuple(sizes)


def _sized_variants(variants: Any, patterns: Any, where: str) -> Any:
    """The variants with a size's overrides on top of each one whose name matches a pattern."""
    if not patterns:
        return variants
    if not (isinstance(patterns, dict) and isinstance(variants, dict)):
        raise ConfigError(f"{where}.variants must map a variants GROUP -> {{name pattern: {{dotted.key: value}}}}")
    out = {g: {n: dict(o) for n, o in named.items()} for g, named in variants.items()
           if isinstance(named, dict) and all(isinstance(o, dict) for o in named.values())}
    for group, by_pattern in patterns.items():
        if group not in out or not isinstance(by_pattern, dict):
            raise ConfigError(f"{where}.variants.{group}: no variants group '{group}' ({', '.join(out)})")
        for pattern, overrides in by_pattern.items():
            matched = [n for n in out[group] if fnmatch.fnmatchcase(n, str(pattern))]
            if not matched or not isinstance(overrides, dict):
                raise ConfigError(f"{where}.variants.{group}.{pattern}: matches none of {', '.join(out[group])} "
                                  f"(or is not a mapping of dotted keys)")
            for n in matched:
                out[group][n].update(overrides)
    return out


def parse(raw: Any, path: Path, size: str | None = None) -> SweepSpec:
    where = str(path)
    if not isinstance(raw, dict):
        raise ConfigError(f"{where}: expected a mapping of {', '.join(TOP_KEYS)}")
    unknown = sorted(set(raw) - set(TOP_KEYS))
    if unknown:
        raise ConfigError(f"{where}: unknown key(s) {', '.join(unknown)}; allowed: {', '.join(TOP_KEYS)}")
    raw, size, reproduces, sizes = sized(raw, where, size)
    search = raw.get("search", {}) or {}
    scheduler = raw.get("scheduler", {"type": "none"}) or {"type": "none"}
    resources = raw.get("resources", {}) or {}
    confirm = raw.get("confirm", {}) or {}
    for section, allowed, value in (("search", ("algorithm", "num_samples", "seed", "sampler"), search),
                                    ("scheduler", ("type", "grace_period", "reduction_factor"), scheduler),
                                    ("resources", ("cpu", "gpu", "workers"), resources),
                                    ("confirm", ("top", "seeds"), confirm)):
        if not isinstance(value, dict):
            raise ConfigError(f"{where}: '{section}' must be a mapping")
        bad = sorted(set(value) - set(allowed))
        if bad:
            raise ConfigError(f"{where}: unknown key(s) {section}.{', '.join(bad)}; allowed: {', '.join(allowed)}")
    spec = SweepSpec(
        name=path.stem, path=path, description=str(raw.get("description", "")), base=str(raw.get("base", "cpu-small")),
        overrides=dict(raw.get("overrides") or {}), space=dict(raw.get("space") or {}),
        variants=_parse_variants(raw.get("variants"), where),
        algorithm=str(search.get("algorithm", "optuna")), num_samples=_int(search.get("num_samples", 1), "search.num_samples", where),
        search_seed=_int(search.get("seed", 0), "search.seed", where), sampler=str(search.get("sampler", "tpe")), scheduler=dict(scheduler), metric=str(raw.get("metric", "val_s2i_r10")),
        mode=str(raw.get("mode", "max")), seeds=[int(s) for s in (raw.get("seeds") or [0])],
        cpu=float(resources.get("cpu", 1)), gpu=float(resources.get("gpu", 0)), workers=int(resources.get("workers", 1)),
        max_concurrent=int(raw.get("max_concurrent", 0)), size=size, reproduces=reproduces, sizes=sizes,
        alpha=_alpha(raw.get("alpha", 0.05), where))
    if confirm:
        seeds = confirm.get("seeds") or []
        if not isinstance(seeds, list):
            raise ConfigError(f"{where}: confirm.seeds must be a list of seeds, e.g. [0, 1]; got {seeds!r}")
        spec.confirm_top = _int(confirm.get("top", 2), "confirm.top", where)
        spec.confirm_seeds = [_int(s, "confirm.seeds", where) for s in seeds]
    validate(spec)
    return spec


def _alpha(value: Any, where: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 < value < 1:
        raise ConfigError(f"{where}: alpha (the verdict's significance level) must be a number in (0, 1), got {value!r}")
    return float(value)


def _int(value: Any, key: str, where: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ConfigError(f"{where}: {key} must be an integer, got {value!r}")
    return value


def check_confirm(spec: SweepSpec) -> None:
    where = str(spec.path)
    if spec.confirm_top < 0:
        raise ConfigError(f"{where}: confirm.top must be >= 0 (0: no confirmation), got {spec.confirm_top}")
    if spec.confirm_top and len(set(spec.confirm_seeds)) < 2:
        raise ConfigError(f"{where}: confirm.seeds needs two or more distinct seeds (seed noise is their spread), "
                          f"got {spec.confirm_seeds}")


def _parse_variants(raw: Any, where: str) -> dict[str, dict[str, dict[str, Any]]]:
    if raw is None:
        return {}
    ok = isinstance(raw, dict) and all(isinstance(g, dict) and g and all(isinstance(v, dict) for v in g.values())
                                       for g in raw.values())
    if not ok:
        raise ConfigError(f"{where}: 'variants' must map GROUP -> {{NAME: {{dotted.key: value, ...}}, ...}}")
    return {str(g): {str(n): dict(o) for n, o in group.items()} for g, group in raw.items()}


def tune_concurrency(spec: SweepSpec) -> int | None:
    """Tune's max_concurrent_trials for the search. None with halving: Tune's limiter counts paused
    trials as running, and they wait at a rung for the others, so trials run as resources allow."""
    return None if spec.scheduler.get("type") == "halving" else spec.max_concurrent or None


def check_resources(spec: SweepSpec) -> None:
    """Per-worker CPU/GPU and the worker count make sense together."""
    where = str(spec.path)
    if spec.cpu <= 0 or spec.gpu < 0:
        raise ConfigError(f"{where}: resources.cpu must be > 0 and resources.gpu >= 0 (got cpu={spec.cpu:g}, "
                          f"gpu={spec.gpu:g})")
    if spec.workers < 1:
        raise ConfigError(f"{where}: resources.workers must be >= 1, got {spec.workers}")
    if spec.workers > 1 and 0 < spec.gpu < 1:
        # two DDP workers of one trial on one GPU: NCCL refuses ("Duplicate GPU detected")
        raise ConfigError(f"{where}: a fractional GPU (gpu={spec.gpu:g}) packs one-worker trials; with workers="
                          f"{spec.workers} give each worker a whole GPU (gpu=1)")


def validate(spec: SweepSpec) -> None:
    where = str(spec.path)
    try:
        spec.base_config()
    except ConfigError as e:
        raise ConfigError(f"{where}: {e}") from e
    if spec.algorithm not in ("optuna", "grid"):
        raise ConfigError(f"{where}: search.algorithm must be optuna or grid, got '{spec.algorithm}'")
    if spec.sampler not in ("tpe", "random", "bruteforce"):
        raise ConfigError(f"{where}: search.sampler must be tpe, random or bruteforce, got '{spec.sampler}'")
    if spec.sampler == "bruteforce" and any("choice" not in d for d in spec.space.values() if isinstance(d, dict)):
        raise ConfigError(f"{where}: search.sampler bruteforce enumerates 'choice' lists only")
    if spec.scheduler.get("type") not in SCHEDULERS:
        raise ConfigError(f"{where}: scheduler.type must be {', '.join(SCHEDULERS[:-1])} or {SCHEDULERS[-1]}, "
                          f"got '{spec.scheduler.get('type')}'")
    if spec.scheduler.get("type") == "halving" and spec.workers > 1:
        # measured: a paused 2-worker Ray Train trial never came back (Ray kept starting workers)
        raise ConfigError(f"{where}: scheduler halving pauses trials at its rungs, which multi-worker trials "
                          f"(workers={spec.workers}) do not survive; use --scheduler asha or none with them")
    if spec.metric not in METRICS:
        raise ConfigError(f"{where}: metric '{spec.metric}' is not one of {', '.join(METRICS)}")
    if spec.mode not in ("max", "min"):
        raise ConfigError(f"{where}: mode must be max or min, got '{spec.mode}'")
    if spec.num_samples < 1:
        raise ConfigError(f"{where}: search.num_samples must be >= 1")
    check_resources(spec)
    check_confirm(spec)
    for group, named in spec.variants.items():
        key = VARIANT_PREFIX + group
        dist = spec.space.setdefault(key, {"choice": list(named)})
        if not (isinstance(dist, dict) and list(dist) == ["choice"] and isinstance(dist["choice"], list)):
            raise ConfigError(f"{where}: space.{key} must be {{choice: [variant names]}}")
        unknown = [v for v in dist["choice"] if v not in named]
        if unknown:
            raise ConfigError(f"{where}: space.{key}: unknown variant(s) {', '.join(map(str, unknown))}; "
                              f"defined: {', '.join(named)}")
        for name, overrides in named.items():
            try:
                spec.base_config(cell=overrides)
            except ConfigError as e:
                raise ConfigError(f"{where}: variants.{group}.{name}: {e}") from e
    if not spec.space:
        raise ConfigError(f"{where}: 'space' is empty; name at least one dotted config key to search")
    for key, dist in spec.space.items():
        if key.startswith(VARIANT_PREFIX):
            if key[len(VARIANT_PREFIX):] not in spec.variants:
                raise ConfigError(f"{where}: space.{key}: no variants group '{key[len(VARIANT_PREFIX):]}'")
            continue
        try:
            typ = key_type(key)
        except ConfigError as e:
            raise ConfigError(f"{where}: space: {e}") from e
        if key == "train.seed":
            raise ConfigError(f"{where}: search seeds with the top-level 'seeds' list, not space.train.seed")
        if key == "train.epochs" and spec.scheduler.get("type") in PRUNING_SCHEDULERS:
            raise ConfigError(f"{where}: the scheduler ({spec.scheduler['type']}) prunes on the epoch counter; "
                              "train.epochs cannot be searched with it")
        if not (isinstance(dist, dict) and len(dist) == 1 and next(iter(dist)) in DISTRIBUTIONS):
            raise ConfigError(f"{where}: space.{key} must be one of {{{': [...]}, {'.join(DISTRIBUTIONS)}: [...]}}, "
                              f"got {dist!r}")
        kind, values = next(iter(dist.items()))
        if not isinstance(values, list) or not values:
            raise ConfigError(f"{where}: space.{key}.{kind} needs a non-empty list")
        if kind == "choice":
            dist[kind] = [coerce(key, v, typ) for v in values]
        else:
            if len(values) != 2 or typ not in (int, float):
                raise ConfigError(f"{where}: space.{key}.{kind} needs [low, high] for a numeric key")
            if not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values):
                raise ConfigError(f"{where}: space.{key}.{kind} bounds must be numbers, got {values!r}")
            if not values[0] < values[1]:
                raise ConfigError(f"{where}: space.{key}.{kind} needs low < high, got {values!r}")
            if kind == "loguniform" and values[0] <= 0:
                raise ConfigError(f"{where}: space.{key}.loguniform needs bounds > 0 (a log scale), got {values!r}")
            if typ is int and kind != "randint":
                raise ConfigError(f"{where}: space.{key} is an integer key: use randint: [low, high] or a choice "
                                  f"list, not {kind}")
            if typ is float and kind == "randint":
                raise ConfigError(f"{where}: space.{key} is a real-valued key: use uniform or loguniform, not randint")
            if spec.algorithm == "grid":
                raise ConfigError(f"{where}: grid search takes 'choice' lists only (space.{key} is {kind})")
    for combo in _sample_combinations(spec):  # every searched value must give a buildable model
        combo = trial_overrides(combo, spec.seeds, spec.variants)
        try:
            cfg = spec.base_config(cell=combo)
            _check_buildable(cfg)
        except (ConfigError, ValueError) as e:
            raise ConfigError(f"{where}: the configuration {combo} cannot be built: {e}") from e


def cell_data_configs(spec: SweepSpec, extra: dict[str, Any] | None = None,
                      limit: int = 4096) -> list[tuple[Any, bool]]:
    """The distinct data sections (DataConfig) of the sweep's cells, the base's first, each with
    whether a cell trains on its NON-ALIGNED speech/text corpus: what the driver prepares before
    any trial starts, so that no two trials build one store at once.  Continuous space keys are
    not enumerated (a trial prepares what they change itself)."""
    from vgs.models.registry import uses_nonaligned_speech_text

    found: dict[str, tuple[Any, bool]] = {}
    for combo in [{}] + _sample_combinations(spec, limit):
        cfg = spec.base_config(extra, cell=trial_overrides(combo, spec.seeds, spec.variants))
        key = repr(cfg.data)
        _, nonaligned = found.get(key, (cfg.data, False))
        found[key] = (cfg.data, nonaligned or uses_nonaligned_speech_text(cfg))
    return list(found.values())


def _sample_combinations(spec: SweepSpec, limit: int = 64) -> list[dict[str, Any]]:
    choices = {k: v["choice"] for k, v in spec.space.items() if "choice" in v}
    combos = [dict(zip(choices, vals)) for vals in itertools.islice(itertools.product(*choices.values()), limit)]
    return combos or [{}]


def _check_buildable(cfg: Config) -> None:
    import torch

    from vgs.data.features import preset_dim
    from vgs.models.registry import build_model

    check_consistent(cfg)
    # a features image side is checked for its shape here; its file is required when the sweep starts
    image_dim = FEATURE_DIMS.get(cfg.model.image.features_from, 2048) if cfg.model.image.encoder == "features" else 0
    with torch.device("meta"):  # shapes only: no memory, no time
        build_model(cfg.model, preset_dim(cfg.data.features), image_dim, vocab_size=64, epochs=cfg.train.epochs)


def restrict(spec: SweepSpec, picks: dict[str, list[str]]) -> None:
    """Keep only the named choices of some space keys (`--pick KEY=A,B`): run part of a table.  A
    variant name may be a shell-style pattern: `--pick 'variant.model=*/full'`."""
    for key, values in picks.items():
        dist = spec.space.get(key)
        if dist is None:
            raise ConfigError(f"--pick {key}: not a key of the '{spec.name}' space ({', '.join(spec.space)})")
        if "choice" not in dist:
            raise ConfigError(f"--pick {key}: only 'choice' keys can be picked from")
        typ = str if key.startswith(VARIANT_PREFIX) else key_type(key)
        wanted = []
        for v in values:
            if typ is str and any(c in v for c in "*?["):  # a pattern: every choice it matches
                matched = [c for c in dist["choice"] if fnmatch.fnmatchcase(str(c), v)]
                if not matched:
                    raise ConfigError(f"--pick {key}: '{v}' matches none of {dist['choice']}")
                wanted += matched
            else:
                wanted.append(coerce(key, v, typ))
        wanted = list(dict.fromkeys(wanted))
        unknown = [v for v in wanted if v not in dist["choice"]]
        if unknown:
            raise ConfigError(f"--pick {key}: {', '.join(map(str, unknown))} not among {dist['choice']}")
        dist["choice"] = wanted
