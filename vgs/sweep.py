"""Run a named sweep with Ray Tune: with vgs.halving (a Tune scheduler), the only module that knows Ray Tune,
Optuna and ASHA.

    python -m vgs.sweep NAME [--data DIR] [--storage DIR] [--tracking-uri URI] [--resume] [key=value ...]

NAME is a file in vgs/search_spaces/ or ./search_spaces/ (or a path to a YAML file).  The corpus and its features are
prepared once in the driver; every trial reuses them.  Runs on whatever Ray cluster
`ray.init()` finds (RAY_ADDRESS, or a cluster started with `ray start`), else a local one.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import math
import os
import signal
import statistics
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

# Ray folds alike log lines of different trials into "[repeated 2x across cluster]", which hid
# whole epoch lines of the demo's progress; read by Ray at import, so set before vgs.trial.
os.environ.setdefault("RAY_DEDUP_LOGS", "0")

from vgs.config import Config, ConfigError, flatten, parse_cli_overrides, to_dict, vgs_home, \
    default_tracking_uri, check_runnable
from vgs import metric_names
from vgs.data.records import CorpusError
from vgs.searchspace import PRUNING_SCHEDULERS, SCHEDULERS, SweepSpec, cell_data_configs, check_confirm, \
    check_resources, load, restrict, space_contains, trial_overrides, tune_concurrency, validate
from vgs import storage as storages
from vgs.trial import run_trial
from vgs.log import get_logger, report_error, set_verbosity, verbosity
from vgs.sweep_output import ProgressCallback, quiet_libraries
from vgs.verdict import config_key, group_by_config, verdict

log = get_logger(__name__)
TABLE_METRICS = metric_names.TABLE  # columns of the summary table, in this order, where any trial reports them


# ---------------------------------------------------------------- driver


def build_param_space(spec: SweepSpec, base: Config) -> tuple[dict, Any]:
    """(Tune param_space, search algorithm)."""
    from ray import tune

    if spec.algorithm == "grid":
        space: dict[str, Any] = {k: tune.grid_search(v["choice"]) for k, v in spec.space.items()}
        if len(spec.seeds) > 1:
            space["train.seed"] = tune.grid_search(spec.seeds)
        else:
            space["train.seed"] = spec.seeds[0]
        return space, None

    import optuna
    from ray.tune.search import Repeater
    from ray.tune.search.optuna import OptunaSearch

    dists = {}
    for key, dist in spec.space.items():
        kind, values = next(iter(dist.items()))
        if kind == "choice":
            dists[key] = optuna.distributions.CategoricalDistribution(values)
        elif kind == "uniform":
            dists[key] = optuna.distributions.FloatDistribution(float(values[0]), float(values[1]))
        elif kind == "loguniform":
            dists[key] = optuna.distributions.FloatDistribution(float(values[0]), float(values[1]), log=True)
        else:
            dists[key] = optuna.distributions.IntDistribution(int(values[0]), int(values[1]))
    samplers = {"tpe": optuna.samplers.TPESampler, "random": optuna.samplers.RandomSampler,
                "bruteforce": optuna.samplers.BruteForceSampler}
    # The base config's own values are the first point, so the sweep always measures its starting point.
    flat = flatten(base)
    start = {k: flat.get(k) for k in spec.space}
    in_space = all(k in flat and space_contains(d, flat[k]) for k, d in spec.space.items())
    # OptunaSearch owns the space, so it gets metric and mode itself (DESIGN.md).
    searcher = OptunaSearch(space=dists, metric=spec.metric, mode=spec.mode,
                            points_to_evaluate=[start] if in_space else None,
                            sampler=samplers[spec.sampler](seed=spec.search_seed))
    constants: dict[str, Any] = {}
    if len(spec.seeds) > 1:
        searcher = Repeater(searcher, repeat=len(spec.seeds), set_index=True)
    else:
        constants["train.seed"] = spec.seeds[0]
    return constants, searcher


def expected_trials(spec: SweepSpec) -> int:
    """How many trials the sweep's first phase creates: every configuration with every seed."""
    if spec.algorithm == "optuna":
        return spec.num_samples * len(spec.seeds)
    return math.prod(len(d["choice"]) for d in spec.space.values()) * len(spec.seeds)


def make_scheduler(spec: SweepSpec, max_epochs: int, sweep_dir: str):
    kind = spec.scheduler.get("type")
    if kind not in PRUNING_SCHEDULERS:
        return None
    grace = int(spec.scheduler.get("grace_period", 1))
    if grace > max_epochs:  # e.g. train.epochs=2 on the command line for a quick look
        log.info(f"note: {kind} grace_period {grace} > train.epochs {max_epochs}; using {max_epochs} (no pruning)")
        grace = max_epochs
    reduction = float(spec.scheduler.get("reduction_factor", 2))
    if kind == "halving":
        from vgs.halving import SynchronousHalving

        return SynchronousHalving(trials=expected_trials(spec), max_t=max_epochs, grace_period=grace,
                                  reduction_factor=reduction, max_concurrent=spec.max_concurrent or None,
                                  state_file=storages.join(sweep_dir, "halving.json"))
    from ray.tune.schedulers import ASHAScheduler

    # time_attr is our epoch counter: Ray's training_iteration restarts after Tuner.restore.
    return ASHAScheduler(time_attr="epoch", max_t=max_epochs, grace_period=grace, reduction_factor=reduction)


class SweepInterrupted(RuntimeError):
    """Ctrl-C / SIGTERM stopped the sweep; Tune saved its state for --resume."""


class _InterruptWatch(logging.Handler):
    """Tune handles Ctrl-C itself and returns normally; its warning is the only sign of it."""

    def __init__(self):
        super().__init__(logging.WARNING)
        self.interrupted = False

    def emit(self, record: logging.LogRecord) -> None:
        if "has been interrupted" in record.getMessage():
            self.interrupted = True


def check_trial_fits(spec: SweepSpec, cluster: dict, local: bool) -> None:
    """A trial that asks for more than the machine has would wait forever on a local Ray: say so.
    On a cluster an autoscaler may still add nodes, so only warn."""
    cpu, gpu = spec.cpu * spec.workers, spec.gpu * spec.workers
    short = [f"{need:g} {name}" for name, need, have in (("GPU", gpu, cluster.get("GPU", 0)),
                                                         ("CPU", cpu, cluster.get("CPU", 0))) if need > have]
    if not short:
        return
    per = f" ({spec.workers} workers)" if spec.workers > 1 else ""
    message = (f"sweep '{spec.name}' asks for {cpu:g} CPU and {gpu:g} GPU per trial{per}, but Ray sees "
               f"{cluster.get('CPU', 0):g} CPU and {cluster.get('GPU', 0):g} GPU; lower it with "
               f"--resources cpu=1,gpu=0 (or run on a machine/cluster that has {', '.join(short)})")
    if local:
        raise ConfigError(message)
    log.warning(f"warning: {message}; waiting for the autoscaler")


DRIVER_MEMORY = 256 * 2**20  # bytes reserved for a multi-worker trial's driving function


def make_trainable(spec: SweepSpec, base: Config, sweep_dir: str):
    """run_trial with its fixed arguments and resources.  A one-worker trial holds the CPU/GPU it
    trains on; a multi-worker trial's function only drives a TorchTrainer whose workers hold them."""
    from ray import tune

    per_worker = {"CPU": spec.cpu, **({"GPU": spec.gpu} if spec.gpu else {})}
    fn = tune.with_parameters(run_trial, base=to_dict(base), seeds=spec.seeds, variants=spec.variants,
                              workers=spec.workers, worker_resources=per_worker, train_storage=sweep_dir)
    if spec.workers > 1:  # no CPU (a 2-core machine runs 2 workers), but a head bundle cannot be empty
        return tune.with_resources(fn, {"cpu": 0, "memory": DRIVER_MEMORY})
    return tune.with_resources(fn, {"cpu": spec.cpu, "gpu": spec.gpu})


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
    base: str | None = None  # a named base config instead of the YAML's (e.g. sharing at seed 004's size)
    scheduler: str | None = None  # scheduler.type instead of the YAML's: asha, halving or none
    size: str | None = None  # cpu or paper, for a YAML with sizes (None: its default, cpu)
    alpha: float | None = None  # the verdict's significance level instead of the YAML's
    add_seeds: int = 0  # with --resume of a finished sweep: this many more seeds for its top configurations
    top: int | None = None  # ... the top this many (default: confirm.top, else 2)


OPTIONS_FILE = "options.json"  # in the sweep's folder: the command line it was started with
# what a resumed sweep takes from its record; --address may change (a cluster restarted elsewhere)
RECORDED = ("data", "tracking_uri", "overrides", "samples", "picks", "seeds", "resources", "confirm", "base",
            "scheduler", "size", "alpha")


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
    unset = SweepOptions(opts.name)
    for key in RECORDED:
        given, kept = getattr(opts, key), getattr(recorded, key)
        if key == "data" and given:
            given = str(Path(given).expanduser().resolve())
        if getattr(opts, key) != getattr(unset, key) and given != kept:
            flag = {"overrides": "key=value overrides", "picks": "--pick"}.get(key, "--" + key.replace("_", "-"))
            raise ConfigError(f"--resume continues {previous} as it was started; {flag} differs (given {given!r}, "
                              f"recorded {kept!r}). Leave it out to resume, or start a new sweep without --resume")
    log.info(f"resuming {previous} with its recorded options: " + ", ".join(
        f"{k}={getattr(recorded, k)!r}" for k in RECORDED if getattr(recorded, k) != getattr(unset, k)))
    return previous, dataclasses.replace(recorded, name=opts.name, resume=True, storage=opts.storage,
                                         address=opts.address or recorded.address, verbose=opts.verbose,
                                         add_seeds=opts.add_seeds, top=opts.top)


def resolved_sweep(opts: SweepOptions) -> tuple[SweepSpec, dict[str, Any], Config]:
    """The sweep's spec with the command line's options applied, the base overrides, and the
    config every trial starts from; every check that needs no Ray and no corpus."""
    spec = load(opts.name, opts.size)
    announce_size(spec, opts.size)
    if opts.base:
        from vgs.config import base_config

        base_config(opts.base)  # an unknown name is refused here, naming the known ones
        if spec.size:
            log.info(f"--base {opts.base} replaces the {spec.size} size's base {spec.base}; that size's overrides "
                     f"still apply")
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
        spec.confirm_seeds = spec.confirm_seeds or (spec.seeds + [max(spec.seeds) + 1] if len(spec.seeds) < 2
                                                    else list(spec.seeds))
        check_confirm(spec)
    validate(spec)  # the spec that runs is the one checked: --base, --pick, --seeds, ... applied
    extra = dict(opts.overrides)
    if opts.data:
        if not Path(opts.data).expanduser().exists():
            raise ConfigError(f"--data {opts.data}: no such folder")
        extra["data.root"] = opts.data
    base = trial_base(spec, extra)
    if base.train.device == "cuda" and spec.gpu <= 0:  # Ray hides every GPU from a trial that asks for none
        raise ConfigError("train.device=cuda but the sweep's trials ask for no GPU; add --resources gpu=1 "
                          "(or gpu=0.25 to share one), or leave train.device=auto")
    return spec, extra, base


def announce_size(spec: SweepSpec, asked: str | None) -> None:
    """The first thing a sized sweep says: which size runs, and why."""
    if not spec.size:
        return
    why = f"--size {asked}" if asked else f"the default; the sweep's sizes: {', '.join(spec.sizes)}"
    what = f": {spec.reproduces}" if spec.reproduces else ""
    log.info(f"size: {spec.size} ({why}){what}")
    if spec.size != "paper" and "paper" in spec.sizes:
        log.info(f"  the paper's own setup: python -m vgs.sweep {spec.name} --size paper --dry-run (its plan in GPU-hours)")


def dry_run(opts: SweepOptions, as_json: bool, bench: str | None = None) -> int:
    """--dry-run: the plan of the sweep (vgs.dry_run) on stdout; nothing trains, Ray does not start."""
    from vgs.dry_run import format_plan, plan_sweep, step_rate

    rate = step_rate(bench)  # a bad --bench file is refused before any corpus work
    spec, _, base = resolved_sweep(opts)
    plan = plan_sweep(spec, base, rate)
    print(json.dumps(plan["cells"], indent=1, default=str) if as_json else format_plan(plan))
    return 0


def run_sweep(opts: SweepOptions) -> dict:
    """Run the sweep `opts.name`; returns its summary (trials, configurations, verdict, best, compute)."""
    import ray
    from ray import tune

    from ray.tune.search.basic_variant import BasicVariantGenerator

    from vgs.data.prepare import prepare, prepare_speech_text, resolve_paths
    from vgs.tracking import MlflowSweepCallback, check_tracking_uri, search_record, source_tags

    t_start = time.time()
    if not opts.verbose:
        quiet_libraries()
    storage_dir = storages.normalise(opts.storage or str(vgs_home() / "ray_results"))  # a folder or s3:// gs:// URI
    previous, finished = None, None
    if opts.add_seeds and not opts.resume:
        raise ConfigError("--add-seeds extends a finished sweep: add --resume (the newest sweep of this name)")
    if opts.resume:
        previous, opts = resumed_options(opts, storage_dir, load(opts.name).name)
        done = storages.join(storages.join(storage_dir, previous), "summary.json")
        if storages.exists(done) and opts.add_seeds:  # more seeds for its top configurations
            finished = json.loads(storages.read_text(done))
            log.info(f"sweep {previous} finished; adding {opts.add_seeds} seed(s) to its top "
                     f"{opts.top or 'configurations'} (every trial already run is kept)")
        elif storages.exists(done):  # nothing left to run: say so and show its answer
            log.info(f"sweep {previous} already finished; its results follow (run without --resume to start a new one)")
            summary = json.loads(storages.read_text(done))
            return {**summary, "wall_seconds": 0.0, "sweep_dir": storages.join(storage_dir, previous),
                    "tracking_uri": opts.tracking_uri or default_tracking_uri()}
    name = opts.name
    spec, extra, base = resolved_sweep(opts)
    tracking_uri = opts.tracking_uri or default_tracking_uri()
    check_tracking_uri(tracking_uri)  # before Ray and before any featurisation

    log.info(f"sweep '{spec.name}': {spec.description}")
    if not ray.is_initialized():
        # the trials' own lines stay in their log files unless --verbose: the driver prints progress
        ray.init(address=opts.address, include_dashboard=False, log_to_driver=opts.verbose,
                 runtime_env={"env_vars": {"VGS_HOME": str(vgs_home()), "PYTHONWARNINGS": "ignore::UserWarning",
                                           # explicit on every node: a worker never guesses a local mlflow.db
                                           "MLFLOW_TRACKING_URI": tracking_uri}})
    # before any corpus work: a trial that cannot fit is reported at once
    check_trial_fits(spec, ray.cluster_resources(), local=opts.address is None and not os.environ.get("RAY_ADDRESS"))
    # in the driver, once, so trials only read the stores (and never build one at the same time)
    datas = cell_data_configs(spec, extra)
    others = f" and {len(datas) - 1} other data configuration(s) of the cells" if len(datas) > 1 else ""
    log.info(f"preparing corpus {resolve_paths(base.data).root}{others} (features are computed once and reused)")
    for d, nonaligned in datas:
        prepare(d)
        if nonaligned:
            prepare_speech_text(d)

    sweep_name = previous or storages.new_sweep_name(storage_dir, spec.name)
    sweep_dir = storages.join(storage_dir, sweep_name)
    if previous is None:  # what --resume will continue with: this command line, resolved
        recorded = dataclasses.replace(opts, resume=False, tracking_uri=tracking_uri,
                                       data=str(Path(opts.data).expanduser().resolve()) if opts.data else None)
        storages.write_text(storages.join(sweep_dir, OPTIONS_FILE), json.dumps(dataclasses.asdict(recorded), indent=1))
    resume_hint = f"python -m vgs.sweep {name} --resume" + (f" --storage {storages.redact(opts.storage)}"
                                                           if opts.storage else "")
    trainable = make_trainable(spec, base, sweep_dir)

    search, tags = search_record(spec), source_tags()

    def tracker() -> MlflowSweepCallback:  # every phase logs to the same parent run (found by sweep_dir)
        return MlflowSweepCallback(
            tracking_uri, experiment=f"vgs-{spec.name}", sweep_name=spec.name, sweep_dir=sweep_dir,
            params={"sweep": spec.name, "base": spec.base, "search": spec.algorithm, "num_samples": spec.num_samples,
                    "scheduler": spec.scheduler.get("type"), "metric": spec.metric,
                    "data.root": resolve_paths(base.data).root,
                    "workers_per_trial": spec.workers, "cpu_per_worker": spec.cpu, "gpu_per_worker": spec.gpu,
                    "confirm_top": spec.confirm_top, "confirm_seeds": ",".join(map(str, spec.confirm_seeds))},
            max_epochs=base.train.epochs, base_params=flatten(base), seeds=spec.seeds, variants=spec.variants,
            search=search, tags=tags)

    def callbacks() -> list:
        shown = [] if opts.verbose else [ProgressCallback(base.train.epochs, spec.seeds, spec.variants,
                                                          base.train.seed, spec.metric)]
        return [tracker(), *shown]

    def run_config(name: str) -> Any:
        return tune.RunConfig(name=name, storage_path=storage_dir if name == sweep_name else sweep_dir,
                              callbacks=callbacks(), verbose=0, checkpoint_config=tune.CheckpointConfig(num_to_keep=1),
                              failure_config=tune.FailureConfig(max_failures=1))

    if finished is not None:
        tuner = None  # its search and confirmation are done: their trials come from its summary
    elif previous is not None:
        log.info(f"resuming {storages.redact(sweep_dir)}")
        tuner = tune.Tuner.restore(sweep_dir, trainable=trainable, resume_unfinished=True, resume_errored=True)
    else:
        param_space, searcher = build_param_space(spec, base)
        tuner = tune.Tuner(
            trainable, param_space=param_space,
            tune_config=tune.TuneConfig(
                search_alg=searcher, scheduler=make_scheduler(spec, base.train.epochs, sweep_dir),
                # Repeater hands each Optuna configuration out once per seed: Tune counts trials
                num_samples=expected_trials(spec) if spec.algorithm == "optuna" else 1,
                max_concurrent_trials=tune_concurrency(spec),
                # ASHA gets metric/mode through TuneConfig only; OptunaSearch already has them.
                metric=spec.metric, mode=spec.mode, trial_dirname_creator=lambda t: t.trial_id),
            run_config=run_config(sweep_name))
    if tuner is None:
        trials = finished["trials"]
    else:
        trials = summarise(spec, _fit_tuner(tuner, spec, resume_hint, sweep_dir), base.train.epochs)

    def run_cells(cells: list[dict], phase: str) -> None:
        """Trials of exactly these cells, in their own Tune folder (restored if it was interrupted)."""
        folder = storages.join(sweep_dir, phase)
        if previous is not None and storages.exists(storages.join(folder, "tuner.pkl")):
            tuner = tune.Tuner.restore(folder, trainable=trainable, resume_unfinished=True, resume_errored=True)
        else:
            tuner = tune.Tuner(trainable, param_space=cell_space(cells), tune_config=tune.TuneConfig(
                search_alg=BasicVariantGenerator(points_to_evaluate=cells), num_samples=len(cells),
                max_concurrent_trials=spec.max_concurrent or None, metric=spec.metric, mode=spec.mode,
                trial_dirname_creator=lambda t: t.trial_id), run_config=run_config(phase))
        for t in summarise(spec, _fit_tuner(tuner, spec, resume_hint, sweep_dir), base.train.epochs):
            trials.append({**t, "phase": CONFIRM if phase == CONFIRM else MORE_SEEDS})

    cells = confirm_cells(spec, trials)
    if cells:
        log.info(f"confirming the best {spec.confirm_top} configurations with seeds "
                 f"{', '.join(map(str, spec.confirm_seeds))} at the full budget: {len(cells)} more trials")
        run_cells(cells, CONFIRM)
    if finished is not None:
        cells, seeds = more_seed_cells(spec, trials, opts.add_seeds, opts.top)
        log.info(f"adding seeds {', '.join(map(str, seeds))} to the top {opts.top or spec.confirm_top or 2} "
                 f"configurations: {len(cells)} more trials")
        if cells:
            run_cells(cells, f"{MORE_SEEDS}_{max(seeds)}")

    summary = summary_of(spec, trials)
    table = format_table(summary["trials"], list(spec.space), multi_seed=len(_seeds_run(trials)) > 1)
    configs = format_config_table(summary["configs"], spec.metric) if summary["configs_repeated"] else ""
    summary["table"] = table + (f"\n\nper configuration ({spec.metric}, full-budget trials):\n{configs}"
                                if configs else "")
    finisher = tracker()
    finisher.setup()
    finisher.finish(f"# {spec.name}\n\n{summary['table']}\n\nverdict: {summary['verdict']}\n", summary.get("best"),
                    summary["verdict"], status=parent_status(summary), metric=spec.metric)
    summary["parent_run_id"], summary["experiment_id"] = finisher.parent_id, finisher.experiment_id
    storages.write_text(storages.join(sweep_dir, "summary.json"), json.dumps(summary, indent=1, default=str))
    summary["wall_seconds"] = time.time() - t_start
    summary["sweep_dir"] = sweep_dir
    summary["tracking_uri"] = tracking_uri
    return summary


def parent_status(summary: dict) -> str:
    """The parent run's end: a sweep none of whose trials produced a score answered nothing, so
    FAILED (and the command exits 1), not FINISHED."""
    return "FINISHED" if summary.get("best") else "FAILED"


def trial_base(spec: SweepSpec, extra: dict[str, Any]) -> Config:
    """The config every trial starts from (its own overrides go on top): the user's paths made
    absolute, the built-in corpus left to each trial to resolve (a cell may change data.builtin_*)."""
    from vgs.data.prepare import absolute_paths

    base = spec.base_config(extra)
    check_runnable(base)  # e.g. train.batch_size=0, or no image features: refused before Ray starts
    base.data = absolute_paths(base.data)
    return base


CONFIRM = "confirm"  # the confirmation phase: its Tune folder inside the sweep's, and its trials' phase
MORE_SEEDS = "more_seeds"  # seeds added to a finished sweep (--resume --add-seeds N): folder more_seeds_<last seed>


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


def _fit_tuner(tuner, spec: SweepSpec, resume_hint: str, sweep_dir: str):
    """tuner.fit(), with SIGTERM treated as Ctrl-C (Tune saves its state) and an interrupt raised."""
    # SIGTERM (a scheduler, `kill`) gets Ctrl-C's graceful stop: Tune saves the experiment state.
    previous_term = signal.signal(signal.SIGTERM, lambda *_: os.kill(os.getpid(), signal.SIGINT))
    watch = _InterruptWatch()
    tune_logger = logging.getLogger("ray.tune.tune")
    tune_logger.addHandler(watch)
    try:
        results = tuner.fit()
    finally:
        signal.signal(signal.SIGTERM, previous_term)
        tune_logger.removeHandler(watch)
    if watch.interrupted:
        raise SweepInterrupted(f"sweep '{spec.name}' interrupted; its state is saved in {storages.redact(sweep_dir)}. Continue it "
                               f"with: {resume_hint}  (it keeps its own data, overrides and tracking URI)")
    return results


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
    top = sorted(best.values(), key=lambda vc: sign * vc[0], reverse=True)[:spec.confirm_top]
    done = {(config_key(t["config"]), t["config"].get("train.seed")) for t in trials if t["status"] == "completed"}
    return [{**config, "train.seed": seed} for _, config in top for seed in spec.confirm_seeds
            if (config_key(config), seed) not in done]


def cell_space(cells: list[dict]) -> dict:
    """A Tune space that holds every cell (BasicVariantGenerator then runs exactly the cells)."""
    from ray import tune

    keys = dict.fromkeys(k for c in cells for k in c)
    return {k: tune.choice(list(dict.fromkeys(c[k] for c in cells))) for k in keys}


def _seeds_run(trials: list[dict]) -> set:
    return {t["config"].get("train.seed") for t in trials}


def summarise(spec: SweepSpec, results, max_epochs: int) -> list[dict]:
    """One record per trial of a Tune result grid: config, epochs, status, best validation scores, test scores."""
    trials = []
    for r in results:
        m = r.metrics or {}
        cfg = trial_overrides(r.config or {}, spec.seeds)  # variant names kept: they label the rows
        epochs = int(m.get("epoch", 0))
        status = "error" if r.error else ("pruned" if epochs < max_epochs else "completed")
        trials.append({"trial_id": m.get("trial_id", Path(r.path).name), "config": cfg, "epochs": epochs,
                       "best_epoch": m.get("best_epoch"), "status": status, "error": _reason(r.error),
                       "phase": "search", "seconds": m.get("seconds_total"),
                       **{f"val_{k}": m.get(f"sel_val_{k}") for k in (*TABLE_METRICS, metric_names.base_name(spec.metric))},
                       **{k: v for k, v in m.items() if k.startswith(("test_", "beam_val_"))}})
    return trials


def summary_of(spec: SweepSpec, trials: list[dict]) -> dict:
    """Trials sorted by score, the configurations' mean ± sd over seeds, the seed-noise verdict, the
    best trial (of the winning configuration when the verdict has one) and the compute spent."""
    key = spec.metric
    scored = [t for t in trials if isinstance(t.get(key), (int, float)) and not math.isnan(t[key])]
    sign = 1 if spec.mode == "max" else -1
    scored.sort(key=lambda t: sign * t[key], reverse=True)
    groups = group_by_config(trials, key, spec.mode)
    more = f"python -m vgs.sweep {spec.name} --resume --add-seeds {{add}} --top 2"
    judged = verdict(groups, spec.mode, spec.metric, spec.alpha, more)
    best = scored[0] if scored else None
    if judged.winner is not None:
        best = next(t for t in scored if config_key(t["config"]) == config_key(judged.winner.config))
    seconds = [t["seconds"] for t in trials if isinstance(t.get("seconds"), (int, float))]
    return {"sweep": spec.name, "metric": spec.metric, "mode": spec.mode,
            "trials": scored + [t for t in trials if t not in scored], "best": best,
            "configs": [{"config": g.config, "values": g.values, "mean": g.mean, "sd": g.sd,
                         "seconds": statistics.fmean(g.seconds) if g.seconds else None} for g in groups],
            "configs_repeated": any(len(g.values) > 1 for g in groups),
            "verdict": judged.line, "beyond_noise": judged.beyond_noise,
            "best_group": [g.config for g in judged.tied] if judged.test else None,
            "test": None if judged.test is None else {"name": "Welch t-test", "p": judged.test.p,
                                                       "ci95": list(judged.test.ci), "diff": judged.test.diff,
                                                       "alpha": spec.alpha, "seeds_needed": judged.seeds_needed},
            "compute": {"trials": len(trials), "trial_epochs": sum(t["epochs"] for t in trials),
                        "trial_seconds": round(sum(seconds), 1),
                        "core_seconds": round(sum(seconds) * spec.cpu * spec.workers, 1)}}


def format_config_table(configs: list[dict], metric: str) -> str:
    rows = [[", ".join(f"{k}={v}" for k, v in c["config"].items()) or "(base)", str(len(c["values"])),
             f"{c['mean']:.3f}", "-" if c["sd"] is None else f"{c['sd']:.3f}",
             " ".join(f"{v:.3f}" for v in c["values"]),
             "-" if c.get("seconds") is None else f"{c['seconds'] / 60:.1f}"] for c in configs]
    return _markdown(["configuration", "seeds", f"mean {metric}", "sd", "per seed", "minutes per trial"], rows)


def _reason(error) -> str | None:
    """The last line of a trial's exception chain that says what went wrong (Ray wraps it)."""
    if not error:
        return None
    lines = [ln.strip() for ln in str(error).splitlines() if ln.strip()]
    named = [ln for ln in lines if ln.startswith(("vgs.", "TrialOutOfMemory", "ConfigError", "CorpusError"))
             or "Error:" in ln]
    return (named or lines or ["failed"])[-1][:500]


def _metric_label(m: str) -> str:
    if m in ("wer", "cer", "bleu"):
        return f"val {m.upper()}"
    return f"val {m.replace('_', ' ').replace('r', 'R@', 1) if 'medr' not in m else m.replace('_', ' ')}"


def format_table(trials: list[dict], space_keys: list[str], multi_seed: bool = False) -> str:
    shown = [m for m in TABLE_METRICS if any(t.get(f"val_{m}") is not None for t in trials)] or list(TABLE_METRICS[:8])
    # decoded with model.asr.beam at the selected epoch (the per-epoch columns decode greedily)
    beamed = [m for m in ("wer", "bleu") if any(t.get(f"beam_val_{m}") is not None for t in trials)]
    cols = ["trial"] + space_keys + (["train.seed"] if multi_seed else []) + ["epochs", "best ep"] + \
        [_metric_label(m) for m in shown] + [f"val {m.upper()} (beam)" for m in beamed] + ["status"]
    rows = []
    for t in trials:
        row = [str(t["trial_id"])] + [str(t["config"].get(k, "")) for k in space_keys]
        if multi_seed:
            row.append(str(t["config"].get("train.seed", "")))
        row += [str(t["epochs"]), str(t.get("best_epoch") or "-")]
        for m in shown:
            v = t.get(f"val_{m}")
            row.append("-" if v is None else (f"{v:.0f}" if m.endswith("medr") else f"{v:.3f}"))
        row += ["-" if t.get(f"beam_val_{m}") is None else f"{t[f'beam_val_{m}']:.3f}" for m in beamed]
        row.append(t["status"] + {CONFIRM: " (confirm)", MORE_SEEDS: " (added seed)"}.get(t.get("phase"), ""))
        rows.append(row)
    return _markdown(cols, rows)


def _markdown(cols: list[str], rows: list[list[str]]) -> str:
    """A markdown table padded to column widths (readable in a terminal too)."""
    widths = [max(len(c), *(len(r[i]) for r in rows)) if rows else len(c) for i, c in enumerate(cols)]
    line = lambda cells: "| " + " | ".join(c.ljust(w) for c, w in zip(cells, widths)) + " |"  # noqa: E731
    return "\n".join([line(cols), "|" + "|".join("-" * (w + 2) for w in widths) + "|"] + [line(r) for r in rows])


def mlflow_command() -> str:
    """The mlflow executable beside this Python (e.g. .venv/bin/mlflow), so the printed command works as is."""
    candidate = Path(sys.executable).parent / "mlflow"
    if candidate.exists():
        try:
            return str(candidate.relative_to(Path.cwd()))
        except ValueError:
            return str(candidate)
    return "mlflow"


def _pick(item: str) -> tuple[str, list[str]]:
    """--pick KEY=A,B -> (KEY, [A, B])."""
    key, sep, values = item.partition("=")
    if not sep or not values:
        raise argparse.ArgumentTypeError(f"'{item}' must look like KEY=A,B")
    return key.strip(), [v.strip() for v in values.split(",")]


def _seeds(text: str) -> list[int]:
    try:
        return [int(x) for x in text.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be comma-separated integers, got '{text}'") from None


def _resources(text: str) -> dict[str, float]:
    """--resources cpu=N,gpu=F,workers=N -> {'cpu': N, ...}."""
    out = {}
    for item in text.split(","):
        key, _, value = item.partition("=")
        if key.strip() not in ("cpu", "gpu", "workers"):
            raise argparse.ArgumentTypeError(f"takes cpu=N,gpu=N,workers=N; got '{item}'")
        try:
            out[key.strip()] = float(value)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{key.strip()} must be a number, got '{value}'") from None
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m vgs.sweep", description="Run a named sweep with Ray Tune.")
    p.add_argument("name", help="search space name (vgs/search_spaces/NAME.yaml) or a YAML path")
    p.add_argument("overrides", nargs="*", help="dotted overrides of the base config, e.g. train.epochs=10")
    p.add_argument("--data", help="corpus folder: Flickr8K Audio, Places or SpokenCOCO layout, detected "
                                  "(default: the built-in corpus); see README 'Use your own corpus'")
    p.add_argument("--base", help="named base config instead of the YAML's (or its size's); the YAML's overrides "
                                  "still apply. For a paper's own setup use --size paper instead")
    p.add_argument("--size", choices=("cpu", "paper"),
                   help="for a sweep that reproduces a paper table: cpu (the default: scaled to run on a laptop, "
                        "the README's CPU results) or paper (the paper's own setup, for GPUs; see README "
                        "'Reproducing the papers at their size')")
    p.add_argument("--bench", metavar="FILE",
                   help="with --dry-run: a `vgs bench --json FILE` measurement whose paper-model step rate turns "
                        "the plan into GPU-hours (default: a stated reference figure)")
    p.add_argument("--samples", type=int, help="number of Optuna trials (default: search.num_samples of the YAML)")
    p.add_argument("--pick", action="append", default=[], metavar="KEY=A,B", type=_pick,
                   help="keep only these choices of a space key, e.g. --pick variant.model=pipe-seq/full, or a "
                        "pattern: 'variant.model=*/full' (repeatable)")
    p.add_argument("--seeds", type=_seeds, help="comma-separated seeds instead of the YAML's, e.g. --seeds 0; every "
                                                "configuration runs with each")
    p.add_argument("--add-seeds", type=int, default=0, metavar="N",
                   help="with --resume of a finished sweep: run its top configurations (--top K) with N more seeds "
                        "under the same MLflow parent, reusing every trial run; verdict, tables and plots are redone")
    p.add_argument("--top", type=int, metavar="K", help="with --add-seeds: how many of the best configurations "
                                                        "(default: confirm.top, else 2)")
    p.add_argument("--alpha", type=float, help="significance level of the verdict's Welch t-tests (default: the YAML's "
                                               "alpha, or 0.05)")
    p.add_argument("--confirm", type=int, metavar="N",
                   help="after the search, run the best N configurations with every seed of confirm.seeds (or "
                        "the sweep's seeds and one more) to the full budget; 0 turns the YAML's confirmation off")
    p.add_argument("--scheduler", choices=SCHEDULERS,
                   help="scheduler.type instead of the YAML's: asha (asynchronous), halving (synchronous successive "
                        "halving: every configuration reaches a rung before the best go on), none (every trial to "
                        "the full budget); the YAML's grace_period and reduction_factor stay")
    p.add_argument("--resources", type=_resources, default={},
                   help="per-trial resources instead of the YAML's: cpu=N,gpu=F per worker and "
                        "workers=N (DDP workers per trial), e.g. gpu=0.25 or gpu=1,workers=4")
    p.add_argument("--storage", help="Ray results: a folder, or an s3:// gs:// file:// URI that every node of a "
                                       "cluster reaches (default: .vgs/ray_results)")
    p.add_argument("--tracking-uri", help="MLflow tracking URI (default: sqlite:///<cwd>/mlflow.db)")
    p.add_argument("--resume", action="store_true", help="continue the most recent run of this sweep")
    p.add_argument("--skip-bad", action="store_true", help="leave out unreadable audio files (with a report)")
    p.add_argument("--address", help="Ray cluster address (default: RAY_ADDRESS or a local cluster)")
    p.add_argument("--dry-run", action="store_true",
                   help="print the plan and stop: each cell's resolved configuration, model and parameters, "
                        "training batches per task per epoch, the sweep's cost and resources (no training, no Ray)")
    p.add_argument("--json", action="store_true", help="with --dry-run: the plan as JSON, one object per cell")
    p.add_argument("--register", metavar="NAME",
                   help="register the best trial's checkpoint in the MLflow Model Registry as a new version of "
                        "NAME (load it with: python -m vgs.retrieve --run models:/NAME ...)")
    p.add_argument("--verbose", action="store_true",
                   help="show the trials' own output (Ray prefixes it with the worker) and every log line "
                        "of Ray, Optuna and MLflow; by default the driver prints one line per trial-epoch")
    a = p.parse_intermixed_args(argv)  # overrides may come before or after options
    # Ray's new console output prints a boxed experiment header and TensorBoard hints even at
    # verbose=0; the legacy one at verbose=0 prints nothing (our driver prints the progress)
    a.verbose = a.verbose or verbosity() >= 2  # `vgs -v sweep ...` is --verbose too
    os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "1" if a.verbose else "0")
    if a.verbose:
        set_verbosity(2)
    # We checkpoint every epoch on purpose (resumable trials); Ray's warning about it is noise.
    os.environ.setdefault("TUNE_WARN_EXCESSIVE_EXPERIMENT_CHECKPOINT_SYNC_THRESHOLD_S", "0")
    try:
        overrides = parse_cli_overrides(a.overrides)
        if a.skip_bad:
            overrides["data.skip_bad"] = "true"
        if a.dry_run:
            return dry_run(SweepOptions(a.name, data=a.data, overrides=overrides, samples=a.samples, picks=dict(a.pick),
                                        seeds=a.seeds, resources=a.resources, confirm=a.confirm, base=a.base,
                                        scheduler=a.scheduler, size=a.size, alpha=a.alpha), a.json, a.bench)
        summary = run_sweep(SweepOptions(
            a.name, data=a.data, storage=a.storage, tracking_uri=a.tracking_uri, resume=a.resume, overrides=overrides,
            address=a.address, samples=a.samples, picks=dict(a.pick), seeds=a.seeds, resources=a.resources,
            confirm=a.confirm, verbose=a.verbose, base=a.base, scheduler=a.scheduler, size=a.size, alpha=a.alpha,
            add_seeds=a.add_seeds, top=a.top))
    except (ConfigError, CorpusError, FileExistsError) as e:
        return report_error(e)
    except SweepInterrupted as e:
        log.warning(f"\n{e}")
        return 130
    best = summary.get("best")
    c = summary["compute"]
    print(f"\nsweep '{summary['sweep']}' finished in {summary['wall_seconds']:.0f} s; {c['trials']} trials, "
          f"{c['trial_epochs']} trial-epochs, {c['core_seconds']:.0f} core-seconds of training")
    print(summary["table"])
    if best:
        cfg = ", ".join(f"{k}={v}" for k, v in best["config"].items() if k != "train.seed")
        seed = f" (seed {best['config']['train.seed']})" if "train.seed" in best["config"] else ""
        if best.get("val_s2i_r10") is not None:
            print(f"\nbest trial {best['trial_id']}{seed}: {cfg} -> val R@10 speech->image {best['val_s2i_r10']:.3f}, "
                  f"image->speech {best['val_i2s_r10']:.3f} (epoch {best['best_epoch']})")
        else:
            print(f"\nbest trial {best['trial_id']}{seed}: {cfg} -> {summary['metric']} "
                  f"{best[summary['metric']]:.3f} (epoch {best['best_epoch']})")
        if best.get("test_s2i_r10") is not None:
            print(f"  test (best epoch): R@10 speech->image {best['test_s2i_r10']:.3f}, "
                  f"image->speech {best['test_i2s_r10']:.3f}")
    for t in summary["trials"]:
        if t.get("error"):
            print(f"trial {t['trial_id']} failed: {t['error']}")
    print(f"\nresults: {storages.redact(summary['sweep_dir'])}")
    runs_table = (f"#/experiments/{summary['experiment_id']}?workflowType=machine_learning"
                  if summary.get("experiment_id") else "")
    print(f"MLflow UI: {mlflow_command()} ui --backend-store-uri {storages.redact(summary['tracking_uri'])}   "
          f"(then open http://127.0.0.1:5000/{runs_table}: the runs table; the parent run's artifacts hold plots/)")
    if a.register and best and summary.get("parent_run_id"):
        from vgs.retrieve import register_best
        from vgs.tracking import client

        try:
            registered = register_best(client(summary["tracking_uri"]), summary["parent_run_id"], a.register)
            print(f"registered {registered}: python -m vgs.retrieve --run models:/{a.register} --wav FILE")
        except ConfigError as e:
            log.error(f"error: --register {a.register}: {e}")
    print(f"\nverdict: {summary['verdict']}")
    return 0 if parent_status(summary) == "FINISHED" else 1


if __name__ == "__main__":
    sys.exit(main())
