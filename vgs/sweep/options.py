"""A sweep's command-line options: what they are, what --resume takes from the record, and the
spec and base config they resolve to, with every check that needs neither Ray nor a corpus."""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from vgs.config import Config, ConfigError, base_config, differing_keys
from vgs.data.prepare import BUILTIN, absolute_paths, check_speech_text_source
from vgs.log import get_logger
from vgs.search_spaces.checks import cell_data_configs, check_confirm, check_resources, restrict, validate
from vgs.search_spaces.model import SweepSpec
from vgs.search_spaces.spec import find, load
from vgs.sweep import storage as storages
from vgs.tasks.factory import check_config

log = get_logger(__name__)


@dataclass
class SweepOptions:
    """What a sweep command line asks for beyond the YAML (None: the YAML's own value)."""

    name: str  # search space name (vgs/search_spaces/NAME.yaml) or a YAML path
    data: str | None = None  # corpus folder (default: the built-in corpus)
    storage: str | None = None  # Ray results folder or URI (default: .vgs/ray_results)
    tracking_uri: str | None = None  # MLflow (default: sqlite:///<cwd>/mlflow.db)
    resume: bool = False
    overrides: dict[str, str] = field(default_factory=dict)  # dotted keys of the base config
    address: str | None = None  # Ray cluster
    samples: int | None = None  # Optuna trials instead of search.num_samples
    picks: dict[str, list[str]] = field(default_factory=dict)  # keep only these choices of some space keys
    seeds: list[int] | None = None
    resources: dict[str, float] = field(default_factory=dict)  # cpu, gpu per worker; workers per trial
    confirm: int | None = None  # confirm.top instead of the YAML's (0: no confirmation phase)
    verbose: bool = False  # the trials' own output and every library log line (not recorded for --resume)
    base: str | None = None  # a named base config instead of the YAML's (e.g. sharing at Chrupała 2019's size)
    scheduler: str | None = None  # scheduler.type instead of the YAML's: asha, halving or none
    size: str | None = None  # cpu or paper, for a YAML with sizes (None: its default, cpu)
    alpha: float | None = None  # the verdict's significance level instead of the YAML's
    max_trials: int | None = None  # search.max_trials instead of the YAML's
    add_seeds: int = 0  # with --resume of a finished sweep: this many more seeds for its top configurations
    top: int | None = None  # ... the top this many (default: confirm.top, else 2)


OPTIONS_FILE = "options.json"  # in the sweep's folder: the command line it was started with
SPACE_FILE = "search_space.yaml"  # ... and the search-space YAML's text it was started from
# what a resumed sweep takes from its record; --address may change (a cluster restarted elsewhere)
RECORDED = (
    "data",
    "tracking_uri",
    "overrides",
    "samples",
    "picks",
    "seeds",
    "resources",
    "confirm",
    "base",
    "scheduler",
    "size",
    "alpha",
    "max_trials",
)


def resumed_options(opts: SweepOptions, storage_dir: str, spec_name: str) -> tuple[str, SweepOptions]:
    """--resume: the newest sweep of this name under storage_dir and the options it was started
    with.  An option given again must agree with the record (a different one is an error)."""
    previous = storages.latest_sweep(storage_dir, spec_name)
    if previous is None:
        raise ConfigError(f"--resume: no earlier '{spec_name}' sweep under {storage_dir}")
    path = storages.join(storages.join(storage_dir, previous), OPTIONS_FILE)
    if not storages.exists(path):  # started by a vgs that did not record its options
        log.info(f"note: {previous} has no {OPTIONS_FILE}; resuming with this command line's options")
        return previous, opts
    recorded = SweepOptions(**{k: v for k, v in json.loads(storages.read_text(path)).items() if k != "verbose"})
    check_space_unchanged(storages.join(storage_dir, previous), opts.name)
    unset = SweepOptions(opts.name)
    for key in RECORDED:
        given, kept = getattr(opts, key), getattr(recorded, key)
        if key == "data" and given:
            given = str(Path(given).expanduser().resolve())
        if getattr(opts, key) != getattr(unset, key) and given != kept:
            flag = {"overrides": "key=value overrides", "picks": "--pick"}.get(key, "--" + key.replace("_", "-"))
            raise ConfigError(
                f"--resume continues {previous} as it was started; {flag} differs (given {given!r}, "
                f"recorded {kept!r}). Leave it out to resume, or start a new sweep without --resume"
            )
    log.info(
        f"resuming {previous} with its recorded options: "
        + ", ".join(f"{k}={getattr(recorded, k)!r}" for k in RECORDED if getattr(recorded, k) != getattr(unset, k))
    )
    return previous, dataclasses.replace(
        recorded,
        name=opts.name,
        resume=True,
        storage=opts.storage,
        address=opts.address or recorded.address,
        verbose=opts.verbose,
        add_seeds=opts.add_seeds,
        top=opts.top,
    )


def check_space_unchanged(sweep_dir: str, name: str) -> None:
    """--resume continues the search space a sweep started from: an edited YAML is refused, naming
    the keys that differ (trials already run would otherwise be relabelled or dropped)."""
    recorded_path = storages.join(sweep_dir, SPACE_FILE)
    if not storages.exists(recorded_path):  # started by a vgs that did not record it
        return
    path = find(name)
    try:
        now = yaml.safe_load(path.read_text())
    except yaml.YAMLError as e:
        raise ConfigError(f"{path}: invalid YAML: {e}") from e
    recorded = yaml.safe_load(storages.read_text(recorded_path))
    changed = differing_keys(recorded, now)
    if changed:
        shown = ", ".join(changed[:10]) + (f" and {len(changed) - 10} more" if len(changed) > 10 else "")
        raise ConfigError(
            f"--resume continues {sweep_dir} as it was started, but {path} has changed since: {shown} "
            f"differ (the started version is {recorded_path}). Restore the file to resume, or run "
            f"without --resume to start a new sweep from the edited one"
        )


def resolved_sweep(opts: SweepOptions, planning: bool = False) -> tuple[SweepSpec, dict[str, Any], Config]:
    """The sweep's spec with the command line's options applied, the base overrides, and the
    config every trial starts from; every check that needs no Ray and no corpus.  planning: for
    --dry-run (a paper-size plan may price the built-in corpus; a paper-size run may not)."""
    spec = load(opts.name, opts.size)
    announce_size(spec, opts.size)
    if opts.base:
        base_config(opts.base)  # an unknown name is refused here, naming the known ones
        if spec.size:
            log.info(
                f"--base {opts.base} replaces the {spec.size} size's base {spec.base}; that size's overrides "
                f"still apply"
            )
        spec.base = opts.base
    if opts.samples is not None:
        if opts.samples < 1:
            raise ConfigError(f"--samples must be >= 1, got {opts.samples}")
        spec.num_samples = opts.samples
    restrict(spec, opts.picks)
    if opts.scheduler:  # the YAML's grace_period and reduction_factor stay
        spec.scheduler = {**spec.scheduler, "type": opts.scheduler}
    if opts.seeds:
        spec.seeds = opts.seeds
    if opts.alpha is not None:
        if not 0 < opts.alpha < 1:
            raise ConfigError(f"--alpha must be in (0, 1), got {opts.alpha}")
        spec.alpha = opts.alpha
    if opts.resources:
        spec.cpu, spec.gpu = opts.resources.get("cpu", spec.cpu), opts.resources.get("gpu", spec.gpu)
        spec.workers = int(opts.resources.get("workers", spec.workers))
        check_resources(spec)
    if opts.confirm is not None:
        spec.confirm_top = opts.confirm
        spec.confirm_seeds = spec.confirm_seeds or (
            spec.seeds + [max(spec.seeds) + 1] if len(spec.seeds) < 2 else list(spec.seeds)
        )
        check_confirm(spec)
    if opts.max_trials is not None:
        spec.max_trials = opts.max_trials
    validate(spec)  # the spec that runs is the one checked: --base, --pick, --seeds, ... applied
    extra = dict(opts.overrides)
    if opts.data:
        if opts.data != BUILTIN and not Path(opts.data).expanduser().exists():
            raise ConfigError(f"--data {opts.data}: no such folder")
        extra["data.root"] = opts.data
    base = trial_base(spec, extra)
    if spec.size == "paper" and not base.data.root:
        check_paper_corpus(planning)
    for data, _, nonaligned in cell_data_configs(spec, extra):  # e.g. a non-aligned row without its corpus
        if nonaligned:
            check_speech_text_source(data)
    if base.train.device == "cuda" and spec.gpu <= 0:  # Ray hides every GPU from a trial that asks for none
        raise ConfigError(
            "train.device=cuda but the sweep's trials ask for no GPU; add --resources gpu=1 "
            "(or gpu=0.25 to share one), or leave train.device=auto"
        )
    return spec, extra, base


def check_paper_corpus(planning: bool) -> None:
    """--size paper without a corpus: the built-in corpus is used only where it is asked for by name."""
    if planning:
        log.info(
            "planned on the built-in corpus (synthetic speech and drawn scenes; data.builtin_* sets its size): "
            "--data names the paper's corpus"
        )
        return
    raise ConfigError(
        "--size paper trains the paper's setup, and no corpus is named: pass --data with the paper's corpus "
        "(Flickr8K Audio, Places or SpokenCOCO; docs/corpora.md). To train the paper's networks on the "
        "built-in corpus instead (not the paper's data), say so: --data builtin"
    )


def announce_size(spec: SweepSpec, asked: str | None) -> None:
    """The first thing a sized sweep says: which size runs, and why."""
    if not spec.size:
        return
    why = f"--size {asked}" if asked else f"the default; the sweep's sizes: {', '.join(spec.sizes)}"
    what = f": {spec.reproduces}" if spec.reproduces else ""
    log.info(f"size: {spec.size} ({why}){what}")
    if spec.size != "paper" and "paper" in spec.sizes:
        log.info(
            f"  the paper's own setup: python -m vgs.sweep {spec.name} --size paper --dry-run (its plan in GPU-hours)"
        )


def trial_base(spec: SweepSpec, extra: dict[str, Any]) -> Config:
    """The config every trial starts from (its own overrides go on top): the user's paths made
    absolute, the built-in corpus left to each trial to resolve (a cell may change data.builtin_*)."""

    base = spec.base_config(extra)
    check_config(base)  # e.g. train.batch_size=0, or no image features: refused before Ray starts
    base.data = absolute_paths(base.data)
    return base
