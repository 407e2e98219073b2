"""Checks of a sweep spec before anything runs: its keys and values, its confirmation and resources,
and that sampled cells build (every error names the YAML file)."""

from __future__ import annotations

import fnmatch
import itertools
import math
from typing import Any

from vgs.config import Config, ConfigError, check_consistent, coerce, key_type
from vgs.data.image_features import FEATURE_DIMS
from vgs.models.ssl import featuriser_for
from vgs.search_spaces.model import (
    DISTRIBUTIONS,
    METRICS,
    PRUNING_SCHEDULERS,
    SCHEDULERS,
    VARIANT_PREFIX,
    SweepSpec,
    check_size,
    trial_overrides,
)

# a network is refused up front where its training state alone is beyond any one machine; one that
# is merely too large for this machine fails as its trial (out of memory), and the others go on
TRAINING_BYTES_PER_PARAMETER = 16  # fp32 weights, gradients, Adam's two moments
LARGEST_MACHINE_BYTES = 2 * 2**40
MAX_CHOICES = 1000  # values in one choice list: a 10 MB list took a 142 s, 3 GB dry run


def check_confirm(spec: SweepSpec) -> None:
    where = str(spec.path)
    for name, seeds in (("seeds", spec.seeds), ("confirm.seeds", spec.confirm_seeds)):
        bad = [s for s in seeds if isinstance(s, bool) or not isinstance(s, int) or not 0 <= s < 2**32]
        if bad:
            raise ConfigError(f"{where}: {name} {bad} must be whole numbers from 0 to 2**32 - 1 (numpy's seed range)")
        repeated = sorted({s for s in seeds if seeds.count(s) > 1})
        if repeated:  # the same seed trains the same run again: the verdict would count it as a second sample
            raise ConfigError(
                f"{where}: {name} {seeds} repeats {', '.join(map(str, repeated))}; a repeated seed reruns the "
                f"same training, not another sample of seed noise (--seeds / '{name}:' take distinct seeds)"
            )
    if spec.confirm_top < 0:
        raise ConfigError(f"{where}: confirm.top must be >= 0 (0: no confirmation), got {spec.confirm_top}")
    if spec.confirm_top and len(set(spec.confirm_seeds)) < 2:
        raise ConfigError(
            f"{where}: confirm.seeds needs two or more distinct seeds (seed noise is their spread), "
            f"got {spec.confirm_seeds}"
        )


def tune_concurrency(spec: SweepSpec) -> int | None:
    """Tune's max_concurrent_trials for the search. None with halving: Tune's limiter counts paused
    trials as running, and they wait at a rung for the others, so trials run as resources allow."""
    return None if spec.scheduler.get("type") == "halving" else spec.max_concurrent or None


def check_resources(spec: SweepSpec) -> None:
    """Per-worker CPU/GPU and the worker count make sense together."""
    where = str(spec.path)
    if spec.cpu <= 0 or spec.gpu < 0:
        raise ConfigError(
            f"{where}: resources.cpu must be > 0 and resources.gpu >= 0 (got cpu={spec.cpu:g}, gpu={spec.gpu:g})"
        )
    if spec.workers < 1:
        raise ConfigError(f"{where}: resources.workers must be >= 1, got {spec.workers}")
    if spec.workers > 1 and 0 < spec.gpu < 1:
        # two DDP workers of one trial on one GPU: NCCL refuses ("Duplicate GPU detected")
        raise ConfigError(
            f"{where}: a fractional GPU (gpu={spec.gpu:g}) packs one-worker trials; with workers="
            f"{spec.workers} give each worker a whole GPU (gpu=1)"
        )


def validate(spec: SweepSpec, count_trials: bool = True) -> None:
    where = str(spec.path)
    if count_trials:
        check_size(spec)  # first: what follows may enumerate cells
    try:
        spec.base_config()
    except ConfigError as e:
        raise ConfigError(f"{where}: {e}") from e
    _check_settings(spec, where)
    check_resources(spec)
    check_confirm(spec)
    _check_variants(spec, where)
    if not spec.space:
        raise ConfigError(f"{where}: 'space' is empty; name at least one dotted config key to search")
    for key, dist in spec.space.items():
        if key.startswith(VARIANT_PREFIX):
            if key[len(VARIANT_PREFIX) :] not in spec.variants:
                raise ConfigError(f"{where}: space.{key}: no variants group '{key[len(VARIANT_PREFIX) :]}'")
            continue
        try:
            typ = key_type(key)
        except ConfigError as e:
            raise ConfigError(f"{where}: space: {e}") from e
        if key == "train.seed":
            raise ConfigError(f"{where}: search seeds with the top-level 'seeds' list, not space.train.seed")
        if key == "train.epochs" and spec.scheduler.get("type") in PRUNING_SCHEDULERS:
            raise ConfigError(
                f"{where}: the scheduler ({spec.scheduler['type']}) prunes on the epoch counter; "
                "train.epochs cannot be searched with it"
            )
        _check_distribution(spec, where, key, dist, typ)
    for combo in _sample_combinations(spec):  # every searched value must give a buildable model
        combo = trial_overrides(combo, spec.seeds, spec.variants)
        try:
            cfg = spec.base_config(cell=combo)
            _check_buildable(cfg)
        except (ConfigError, ValueError) as e:
            raise ConfigError(f"{where}: the configuration {combo} cannot be built: {e}") from e


def _check_settings(spec: SweepSpec, where: str) -> None:
    """search:, scheduler:, metric and mode."""
    if spec.algorithm not in ("optuna", "grid"):
        raise ConfigError(f"{where}: search.algorithm must be optuna or grid, got '{spec.algorithm}'")
    if spec.sampler not in ("tpe", "random", "bruteforce"):
        raise ConfigError(f"{where}: search.sampler must be tpe, random or bruteforce, got '{spec.sampler}'")
    if spec.sampler == "bruteforce" and any("choice" not in d for d in spec.space.values() if isinstance(d, dict)):
        raise ConfigError(f"{where}: search.sampler bruteforce enumerates 'choice' lists only")
    if spec.scheduler.get("type") not in SCHEDULERS:
        raise ConfigError(
            f"{where}: scheduler.type must be {', '.join(SCHEDULERS[:-1])} or {SCHEDULERS[-1]}, "
            f"got '{spec.scheduler.get('type')}'"
        )
    if spec.scheduler.get("type") == "halving" and spec.workers > 1:
        # measured: a paused 2-worker Ray Train trial never came back (Ray kept starting workers)
        raise ConfigError(
            f"{where}: scheduler halving pauses trials at its rungs, which multi-worker trials "
            f"(workers={spec.workers}) do not survive; use --scheduler asha or none with them"
        )
    if spec.metric not in METRICS:
        raise ConfigError(f"{where}: metric '{spec.metric}' is not one of {', '.join(METRICS)}")
    if spec.mode not in ("max", "min"):
        raise ConfigError(f"{where}: mode must be max or min, got '{spec.mode}'")
    if spec.num_samples < 1:
        raise ConfigError(f"{where}: search.num_samples must be >= 1")


def _check_variants(spec: SweepSpec, where: str) -> None:
    """Each variants group: its space key, its names, and a base config for each."""
    for group, named in spec.variants.items():
        key = VARIANT_PREFIX + group
        dist = spec.space.setdefault(key, {"choice": list(named)})
        if not (isinstance(dist, dict) and list(dist) == ["choice"] and isinstance(dist["choice"], list)):
            raise ConfigError(f"{where}: space.{key} must be {{choice: [variant names]}}")
        unknown = [v for v in dist["choice"] if v not in named]
        if unknown:
            raise ConfigError(
                f"{where}: space.{key}: unknown variant(s) {', '.join(map(str, unknown))}; defined: {', '.join(named)}"
            )
        for name, overrides in named.items():
            try:
                spec.base_config(cell=overrides)
            except ConfigError as e:
                raise ConfigError(f"{where}: variants.{group}.{name}: {e}") from e


def _check_distribution(spec: SweepSpec, where: str, key: str, dist: Any, typ: type) -> None:
    """One space key's distribution: its form, its values against the key's type (choice lists are
    coerced in place)."""
    if not (isinstance(dist, dict) and len(dist) == 1 and next(iter(dist)) in DISTRIBUTIONS):
        raise ConfigError(
            f"{where}: space.{key} must be one of {{{': [...]}, {'.join(DISTRIBUTIONS)}: [...]}}, got {dist!r}"
        )
    kind, values = next(iter(dist.items()))
    if not isinstance(values, list) or not values:
        raise ConfigError(f"{where}: space.{key}.{kind} needs a non-empty list")
    if kind == "choice":
        if len(values) > MAX_CHOICES:
            raise ConfigError(
                f"{where}: space.{key}.choice has {len(values)} values; at most {MAX_CHOICES} (a search "
                f"that large is a range: uniform, loguniform or randint)"
            )
        try:
            dist[kind] = [coerce(key, v, typ) for v in values]
        except ConfigError as e:
            raise ConfigError(f"{where}: space.{key}.choice {values!r}: {e}") from e
        repeated = sorted({repr(v) for i, v in enumerate(dist[kind]) if v in dist[kind][:i]})
        if repeated:
            raise ConfigError(
                f"{where}: space.{key}.choice repeats {', '.join(repeated)}: each value is one configuration "
                f"(a repeat trains the same configuration and seed twice and miscounts the verdict's seeds); "
                f"more seeds are the YAML's seeds or --seeds"
            )
    else:
        if len(values) != 2 or typ not in (int, float):
            raise ConfigError(f"{where}: space.{key}.{kind} needs [low, high] for a numeric key")
        if not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values):
            raise ConfigError(f"{where}: space.{key}.{kind} bounds must be numbers, got {values!r}")
        if not all(math.isfinite(v) for v in values):
            raise ConfigError(f"{where}: space.{key}.{kind} bounds must be finite, got {values!r}")
        if not values[0] < values[1]:
            raise ConfigError(f"{where}: space.{key}.{kind} needs low < high, got {values!r}")
        if kind == "loguniform" and values[0] <= 0:
            raise ConfigError(f"{where}: space.{key}.loguniform needs bounds > 0 (a log scale), got {values!r}")
        if typ is int and kind != "randint":
            raise ConfigError(
                f"{where}: space.{key} is an integer key: use randint: [low, high] or a choice list, not {kind}"
            )
        if typ is float and kind == "randint":
            raise ConfigError(f"{where}: space.{key} is a real-valued key: use uniform or loguniform, not randint")
        if spec.algorithm == "grid":
            raise ConfigError(f"{where}: grid search takes 'choice' lists only (space.{key} is {kind})")


def cell_data_configs(
    spec: SweepSpec, extra: dict[str, Any] | None = None, limit: int = 4096
) -> list[tuple[Any, Any, bool]]:
    """The distinct data of the sweep's cells, the base's first: each data section (DataConfig) with
    what its speech store holds (a featuriser: MFCCs, or a front-end's cached states or waveforms)
    and whether a cell trains on its NON-ALIGNED speech/text corpus.  What the driver prepares
    before any trial starts, so that no two trials build one store at once.  Continuous space keys
    are not enumerated (a trial prepares what they change itself)."""
    from vgs.tasks.factory import uses_nonaligned_speech_text

    found: dict[str, tuple[Any, Any, bool]] = {}
    combos: list[dict[str, Any]] = [{}, *_sample_combinations(spec, limit)]
    for combo in combos:
        cfg = spec.base_config(extra, cell=trial_overrides(combo, spec.seeds, spec.variants))
        speech = featuriser_for(cfg)
        key = repr((cfg.data, speech))
        _, _, nonaligned = found.get(key, (cfg.data, speech, False))
        found[key] = (cfg.data, speech, nonaligned or uses_nonaligned_speech_text(cfg))
    return list(found.values())


def _sample_combinations(spec: SweepSpec, limit: int = 64) -> list[dict[str, Any]]:
    choices = {k: v["choice"] for k, v in spec.space.items() if "choice" in v}
    combos = [dict(zip(choices, vals)) for vals in itertools.islice(itertools.product(*choices.values()), limit)]
    return combos or [{}]


def _check_buildable(cfg: Config) -> None:
    import torch

    from vgs.tasks.factory import build_model

    check_consistent(cfg)
    # a features image side is checked for its shape here; its file is required when the sweep starts
    image_dim = FEATURE_DIMS.get(cfg.model.image.features_from, 2048) if cfg.model.image.encoder == "features" else 0
    with torch.device("meta"):  # shapes only: no memory, no time
        speech_dim = featuriser_for(cfg).dim
        model = build_model(cfg.model, speech_dim, image_dim, vocab_size=64, epochs=cfg.train.epochs, weights=False)
    params = sum(p.numel() for p in model.parameters())
    need = params * TRAINING_BYTES_PER_PARAMETER
    if need > LARGEST_MACHINE_BYTES:
        raise ConfigError(
            f"this configuration's network has {params:.3g} parameters: training it holds about "
            f"{need / 2**40:,.0f} TiB (fp32 weights, gradients and Adam's two moments), beyond any one "
            f"machine ({LARGEST_MACHINE_BYTES // 2**40} TiB); lower model.latent or the encoders' sizes"
        )


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
