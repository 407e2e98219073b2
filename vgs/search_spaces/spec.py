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
      paper: {reproduces: "Higy et al. 2020 Tables 1-2", base: higy2020, overrides: {...},
              scheduler: {type: none}, resources: {cpu: 4, gpu: 1}}

A size's base replaces the top-level one; its overrides go on top of the top-level overrides; its
variants entries (GROUP -> name pattern -> overrides) go on top of every variant whose name
matches; scheduler, resources, max_concurrent, seeds and confirm replace the top-level ones.
Nothing of one size reaches the other.
"""

from __future__ import annotations

import fnmatch
import os
from pathlib import Path
from typing import Any

import yaml

from vgs.config import ConfigError
from vgs.log import get_logger
from vgs.search_spaces.checks import validate
from vgs.search_spaces.model import DEFAULT_MAX_TRIALS, DEFAULT_SIZE, SIZE_KEYS, SIZES, TOP_KEYS, SweepSpec

log = get_logger(__name__)

MAX_YAML_BYTES = 256 * 2**10  # the largest named sweep is a few KiB
PACKAGE_SPACES = Path(__file__).resolve().parent  # the named sweeps lie beside this module


def search_space_dirs() -> list[Path]:
    dirs = [Path(p) for p in os.environ.get("VGS_SEARCH_SPACES", "").split(os.pathsep) if p]
    # VGS_SEARCH_SPACES, then ./search_spaces (a user's own), then the package's (vgs/search_spaces,
    # package data: an installed wheel has them too)
    return dirs + [Path.cwd() / "search_spaces", PACKAGE_SPACES]


# old names of named sweeps (a file of the old name in a user's own folder still wins)
RENAMED_SWEEPS = {"gru_layers_seed003": "gru_layers_higy2020"}


def available() -> list[str]:
    return sorted({p.stem for d in search_space_dirs() if d.is_dir() for p in d.glob("*.yaml")})


def find(name: str) -> Path:
    if name.endswith((".yaml", ".yml")):
        if Path(name).is_file():
            return Path(name).resolve()
        raise ConfigError(f"search-space file not found: {name}")
    if name in RENAMED_SWEEPS and not any((d / f"{name}.yaml").is_file() for d in search_space_dirs()):
        log.warning(f"sweep '{name}' is deprecated: use '{RENAMED_SWEEPS[name]}' (the old name still works, for now)")
        name = RENAMED_SWEEPS[name]
    for d in search_space_dirs():
        if (d / f"{name}.yaml").is_file():
            return (d / f"{name}.yaml").resolve()
    raise ConfigError(f"unknown sweep '{name}'; available: {', '.join(available()) or '(none found)'}")


def load(name: str, size: str | None = None) -> SweepSpec:
    """The search space NAME at `size` (None: the default size where the YAML has sizes)."""
    path = find(name)
    if path.stat().st_size > MAX_YAML_BYTES:
        raise ConfigError(
            f"{path}: {path.stat().st_size / 2**20:.1f} MiB is not a search space (at most "
            f"{MAX_YAML_BYTES // 2**10} KiB; a long list of values is a range: uniform, loguniform or randint)"
        )
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
            raise ConfigError(
                f"{where}: this sweep has one size (no 'sizes:' section), so --size does not apply; "
                f"the sweeps with a paper size: {', '.join(paper_sized()) or '(none)'}"
            )
        return raw, "", "", ()
    if not (
        isinstance(sizes, dict)
        and sizes
        and set(sizes) <= set(SIZES)
        and all(isinstance(v, dict) for v in sizes.values())
    ):
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
    out = {
        g: {n: dict(o) for n, o in named.items()}
        for g, named in variants.items()
        if isinstance(named, dict) and all(isinstance(o, dict) for o in named.values())
    }
    for group, by_pattern in patterns.items():
        if group not in out or not isinstance(by_pattern, dict):
            raise ConfigError(f"{where}.variants.{group}: no variants group '{group}' ({', '.join(out)})")
        for pattern, overrides in by_pattern.items():
            matched = [n for n in out[group] if fnmatch.fnmatchcase(n, str(pattern))]
            if not matched or not isinstance(overrides, dict):
                raise ConfigError(
                    f"{where}.variants.{group}.{pattern}: matches none of {', '.join(out[group])} "
                    f"(or is not a mapping of dotted keys)"
                )
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
    for section, allowed, value in (
        ("search", ("algorithm", "num_samples", "seed", "sampler", "max_trials"), search),
        ("scheduler", ("type", "grace_period", "reduction_factor"), scheduler),
        ("resources", ("cpu", "gpu", "workers"), resources),
        ("confirm", ("top", "seeds"), confirm),
    ):
        if not isinstance(value, dict):
            raise ConfigError(f"{where}: '{section}' must be a mapping")
        bad = sorted(set(value) - set(allowed))
        if bad:
            raise ConfigError(f"{where}: unknown key(s) {section}.{', '.join(bad)}; allowed: {', '.join(allowed)}")
    spec = SweepSpec(
        name=path.stem,
        path=path,
        description=str(raw.get("description", "")),
        base=str(raw.get("base", "cpu-small")),
        overrides=dict(raw.get("overrides") or {}),
        space=dict(raw.get("space") or {}),
        variants=_parse_variants(raw.get("variants"), where),
        algorithm=str(search.get("algorithm", "optuna")),
        num_samples=_int(search.get("num_samples", 1), "search.num_samples", where),
        search_seed=_int(search.get("seed", 0), "search.seed", where),
        sampler=str(search.get("sampler", "tpe")),
        max_trials=_int(search.get("max_trials", DEFAULT_MAX_TRIALS), "search.max_trials", where),
        scheduler=dict(scheduler),
        metric=str(raw.get("metric", "val_s2i_r10")),
        mode=str(raw.get("mode", "max")),
        seeds=[int(s) for s in (raw.get("seeds") or [0])],
        cpu=float(resources.get("cpu", 1)),
        gpu=float(resources.get("gpu", 0)),
        workers=int(resources.get("workers", 1)),
        max_concurrent=int(raw.get("max_concurrent", 0)),
        size=size,
        reproduces=reproduces,
        sizes=sizes,
        alpha=_alpha(raw.get("alpha", 0.05), where),
    )
    if confirm:
        seeds = confirm.get("seeds") or []
        if not isinstance(seeds, list):
            raise ConfigError(f"{where}: confirm.seeds must be a list of seeds, e.g. [0, 1]; got {seeds!r}")
        spec.confirm_top = _int(confirm.get("top", 2), "confirm.top", where)
        spec.confirm_seeds = [_int(s, "confirm.seeds", where) for s in seeds]
    validate(spec, count_trials=False)  # counted once the command line may have raised the limit
    return spec


def _alpha(value: Any, where: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 < value < 1:
        raise ConfigError(
            f"{where}: alpha (the verdict's significance level) must be a number in (0, 1), got {value!r}"
        )
    return float(value)


def _int(value: Any, key: str, where: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ConfigError(f"{where}: {key} must be an integer, got {value!r}")
    return value


def _parse_variants(raw: Any, where: str) -> dict[str, dict[str, dict[str, Any]]]:
    if raw is None:
        return {}
    ok = isinstance(raw, dict) and all(
        isinstance(g, dict) and g and all(isinstance(v, dict) for v in g.values()) for g in raw.values()
    )
    if not ok:
        raise ConfigError(f"{where}: 'variants' must map GROUP -> {{NAME: {{dotted.key: value, ...}}, ...}}")
    return {str(g): {str(n): dict(o) for n, o in group.items()} for g, group in raw.items()}
