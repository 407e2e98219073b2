"""Run a named sweep with Ray Tune.  `run_sweep` reads as its story: resume, resolve, check tracking,
start Ray, prepare data, search, confirm, summarise, finish.

    python -m vgs.sweep NAME [--data DIR] [--storage DIR] [--tracking-uri URI] [--resume] [key=value ...]

NAME is a file in vgs/search_spaces/ or ./search_spaces/ (or a path to a YAML file).  The corpus and its features
are prepared once in the driver; every trial reuses them.  Runs on whatever Ray cluster `ray.init()` finds
(RAY_ADDRESS, or a cluster started with `ray start`), else a local one that listens on loopback only.
"""

from __future__ import annotations

import contextlib
import dataclasses
import errno
import json
import os
import shlex
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

# Ray folds alike log lines of different trials into "[repeated 2x across cluster]", which hid
# whole epoch lines of the demo's progress; read by Ray at import, so set before Ray loads.
os.environ.setdefault("RAY_DEDUP_LOGS", "0")

from vgs.config import Config, ConfigError, default_tracking_uri, flatten, vgs_home
from vgs.data.prepare import prepare, prepare_speech_text, resolve_paths
from vgs.environment import environment_record, environment_tags
from vgs.log import get_logger
from vgs.results.pareto import pareto_lines
from vgs.results.tables import CONFIRM, MORE_SEEDS, format_config_table, format_table
from vgs.search_spaces.checks import cell_data_configs, tune_concurrency
from vgs.search_spaces.model import SweepSpec
from vgs.search_spaces.spec import find, load
from vgs.sweep import storage as storages
from vgs.sweep.dry_run import format_plan, plan_sweep, step_rate
from vgs.sweep.options import OPTIONS_FILE, SPACE_FILE, SweepOptions, resolved_sweep, resumed_options
from vgs.sweep.output import ProgressCallback, quiet_libraries
from vgs.sweep.phases import confirm_cells, more_seed_cells, parent_status, seeds_run, summarise, summary_of
from vgs.sweep.ray_start import init_ray, joins_a_cluster
from vgs.sweep.tracking.records import search_record, source_tags
from vgs.sweep.tracking.store import absolute_tracking_uri, check_tracking_uri, error_chain, unreachable_server
from vgs.sweep.tune_setup import (
    SweepInterrupted,
    build_param_space,
    cell_space,
    check_trial_fits,
    expected_trials,
    fit_tuner,
    make_scheduler,
    make_trainable,
)

log = get_logger(__name__)


def dry_run(opts: SweepOptions, as_json: bool, bench: str | None = None) -> int:
    """--dry-run: the plan of the sweep (vgs.sweep.dry_run) on stdout; nothing trains, Ray does not start."""

    rate = step_rate(bench)  # a bad --bench file is refused before any corpus work
    spec, _, base = resolved_sweep(opts, planning=True)
    plan = plan_sweep(spec, base, rate)
    print(json.dumps(plan["cells"], indent=1, default=str) if as_json else format_plan(plan))
    return 0


@dataclass
class Sweep:
    """One sweep being run: what it resolved to and where it lives."""

    opts: SweepOptions
    spec: SweepSpec
    extra: dict[str, Any]  # base overrides of the command line (and --data)
    base: Config  # the config every trial starts from
    tracking_uri: str
    storage_dir: str
    name: str  # its folder under storage_dir, e.g. gru_layers_20261204-101010
    previous: str | None  # the folder --resume continues
    finished: dict | None  # the summary of a finished sweep that --add-seeds extends

    @property
    def dir(self) -> str:
        return storages.join(self.storage_dir, self.name)

    @property
    def resume_hint(self) -> str:
        storage = ["--storage", storages.redact(self.opts.storage)] if self.opts.storage else []
        name = str(find(self.opts.name)) if self.opts.name.endswith((".yaml", ".yml")) else self.opts.name
        return shlex.join(["python", "-m", "vgs.sweep", name, "--resume", *storage])  # pasted in any folder


def run_sweep(opts: SweepOptions) -> dict:
    """Run the sweep `opts.name`; returns its summary (trials, configurations, verdict, best, compute)."""
    t_start = time.time()
    if not opts.verbose:
        quiet_libraries()
    storage_dir = storages.normalise(opts.storage or str(vgs_home() / "ray_results"))  # a folder or s3:// gs:// URI
    if opts.tracking_uri:
        opts = dataclasses.replace(opts, tracking_uri=absolute_tracking_uri(opts.tracking_uri))
    opts, previous, finished = resume_point(opts, storage_dir)
    if finished is not None and not opts.add_seeds:  # nothing left to run: its answer
        return {
            **finished,
            "wall_seconds": 0.0,
            "sweep_dir": storages.join(storage_dir, previous or ""),
            "tracking_uri": opts.tracking_uri or default_tracking_uri(),
        }
    with contextlib.ExitStack() as held:
        if previous is not None:  # before anything runs: a second driver of this folder is refused
            held.enter_context(storages.driver_lock(storages.join(storage_dir, previous)))
        space_text = find(opts.name).read_text()  # what --resume will hold the YAML to
        spec, extra, base = resolved_sweep(opts)
        tracking_uri = absolute_tracking_uri(opts.tracking_uri or default_tracking_uri())
        sweep = Sweep(opts, spec, extra, base, tracking_uri, storage_dir, previous or "", previous, finished)

        check_tracking_uri(sweep.tracking_uri)  # before Ray and before any featurisation
        log.info(f"sweep '{spec.name}': {spec.description}")
        clock = Stopwatch(t_start)
        clock.lap("resolve")
        start_ray(sweep)
        clock.lap("start_ray")
        prepare_data(sweep)
        clock.lap("prepare_data")
        if previous is None:
            sweep.name = storages.new_sweep_name(storage_dir, spec.name)
            held.enter_context(storages.driver_lock(sweep.dir))
            record_options(sweep, space_text)
        runner = PhaseRunner(sweep)
        try:
            trials = finished["trials"] if finished is not None else runner.search()
            clock.lap("search")
            trials += runner.confirm(trials)
            if finished is not None:
                trials += runner.add_seeds(trials)
            clock.lap("confirm")
            summary = finish(sweep, trials, runner, clock)
        except SweepInterrupted as e:
            stopped(runner, e)  # its state is saved; --resume continues the same parent run
            raise
        except Exception as e:
            dying = driver_death(runner, sweep, e)
            if dying is e:
                raise
            raise dying from e
    return {**summary, "wall_seconds": time.time() - t_start, "sweep_dir": sweep.dir, "tracking_uri": tracking_uri}


class Stopwatch:
    """Wall seconds of the driver's stages (summary.json "timings"): what a sweep costs beyond its
    trials, e.g. for `vgs bench --overhead`."""

    def __init__(self, start: float):
        self.start = self.last = start
        self.laps: dict[str, float] = {}

    def lap(self, stage: str) -> None:
        now = time.time()
        self.laps[stage] = round(now - self.last, 3)
        self.last = now

    def timings(self) -> dict[str, float]:
        return {**self.laps, "total": round(time.time() - self.start, 3)}


def stopped(runner: PhaseRunner, interrupt: SweepInterrupted) -> None:
    """An interrupted sweep leaves no run RUNNING: the parent and its unfinished trials end KILLED."""
    try:
        runner.tracker().stopped(str(interrupt))
    except Exception as e:  # noqa: BLE001 - the interrupt's message (how to resume) matters more
        log.warning(f"could not mark the interrupted runs KILLED: {type(e).__name__}: {e}")


NEARLY_FULL = 16 * 2**20  # bytes: below this the sweep folder's disk is taken as full


def driver_death(runner: PhaseRunner, sweep: Sweep, error: Exception) -> Exception:
    """The error a dying driver raises, after its parent run is marked FAILED with the reason.  A
    tracking server that stopped answering is one line with the resume command; a full disk is
    named with the folder and its free space (Tune's own error was an EOFError)."""
    down = unreachable_server(error, sweep.tracking_uri)
    if down:  # one line, not MLflow's and Tune's tracebacks; no minutes of retries to mark the parent
        # FAILED on the server that is down: --resume continues that parent run
        return ConfigError(f"{down}; the trials so far are kept: start it again, then {sweep.resume_hint}")
    reason = f"{type(error).__name__}: {error}"
    full = next((e for e in error_chain(error) if isinstance(e, OSError) and e.errno == errno.ENOSPC), None)
    local = [Path(p) for p in (sweep.dir, sweep.storage_dir) if not storages.is_uri(p) and Path(p).exists()]
    folder = local[0] if local else None
    free = shutil.disk_usage(folder).free if folder else None
    # Tune reports a full disk as whatever broke next (an EOFError reading a truncated file)
    if full is not None or (free is not None and free < NEARLY_FULL):
        where = getattr(full, "filename", None) or folder
        room = f"{free / 2**20:.1f} MiB free under {folder}" if free is not None else "no room left"
        reason = f"storage full: {where} ({room}); free space or pass --storage on a larger disk, then --resume"
        error = ConfigError(reason)
    try:
        runner.tracker().fail(reason)
    except Exception as e:  # noqa: BLE001 - the original error matters more than the tracking one
        log.warning(f"could not mark the parent run FAILED: {e}")
    return error


def resume_point(opts: SweepOptions, storage_dir: str) -> tuple[SweepOptions, str | None, dict | None]:
    """(options, the folder --resume continues, that sweep's summary if it finished)."""
    if opts.add_seeds and not opts.resume:
        raise ConfigError("--add-seeds extends a finished sweep: add --resume (the newest sweep of this name)")
    if not opts.resume:
        return opts, None, None
    previous, opts = resumed_options(opts, storage_dir, load(opts.name).name)
    done = storages.join(storages.join(storage_dir, previous), "summary.json")
    if not storages.exists(done):
        return opts, previous, None
    if opts.add_seeds:
        log.info(
            f"sweep {previous} finished; adding {opts.add_seeds} seed(s) to its top "
            f"{opts.top or 'configurations'} (every trial already run is kept)"
        )
    else:
        log.info(f"sweep {previous} already finished; its results follow (run without --resume to start a new one)")
    return opts, previous, json.loads(storages.read_text(done))


def start_ray(sweep: Sweep) -> None:
    """Connect to the cluster (or start a local Ray), then refuse a trial that cannot fit."""
    import ray

    if not ray.is_initialized():
        # the trials' own lines stay in their log files unless --verbose: the driver prints progress
        init_ray(
            sweep.opts.address,
            include_dashboard=False,
            log_to_driver=sweep.opts.verbose,
            runtime_env={
                "env_vars": {
                    "VGS_HOME": str(vgs_home()),
                    "PYTHONWARNINGS": "ignore::UserWarning",
                    # explicit on every node: a worker never guesses a local mlflow.db
                    "MLFLOW_TRACKING_URI": sweep.tracking_uri,
                }
            },
        )
    # before any corpus work: a trial that cannot fit is reported at once
    check_trial_fits(sweep.spec, ray.cluster_resources(), local=not joins_a_cluster(sweep.opts.address))


def prepare_data(sweep: Sweep) -> None:
    """In the driver, once, so trials only read the stores (and never build one at the same time)."""

    datas = cell_data_configs(sweep.spec, sweep.extra)
    others = f" and {len(datas) - 1} other data configuration(s) of the cells" if len(datas) > 1 else ""
    log.info(f"preparing corpus {resolve_paths(sweep.base.data).root}{others} (features are computed once and reused)")
    for d, speech, nonaligned in datas:
        prepare(d, speech=speech)
        if nonaligned:
            prepare_speech_text(d, speech)


def record_options(sweep: Sweep, space_text: str) -> None:
    """What --resume will continue with: this command line, resolved, and the search space's YAML."""
    opts = sweep.opts
    recorded = dataclasses.replace(
        opts,
        resume=False,
        tracking_uri=sweep.tracking_uri,
        data=str(Path(opts.data).expanduser().resolve()) if opts.data else None,
    )
    storages.write_text(storages.join(sweep.dir, OPTIONS_FILE), json.dumps(dataclasses.asdict(recorded), indent=1))
    storages.write_text(storages.join(sweep.dir, SPACE_FILE), space_text)


class PhaseRunner:
    """The sweep's Tune phases: the search, the confirmation of its best, seeds added later.  Every
    phase logs to the same MLflow parent run (found by the sweep's folder)."""

    def __init__(self, sweep: Sweep):
        self.sweep = sweep
        self.trainable = make_trainable(sweep.spec, sweep.base, sweep.dir)

        self.search_record, self.tags = search_record(sweep.spec), source_tags()
        self.environment = environment_record()  # what produced the figures (summary.json, parent run)

    def tracker(self):
        from vgs.sweep.tracking.callback import MlflowSweepCallback

        s, spec, base = self.sweep, self.sweep.spec, self.sweep.base

        return MlflowSweepCallback(
            s.tracking_uri,
            experiment=f"vgs-{spec.name}",
            sweep_name=spec.name,
            sweep_dir=s.dir,
            params={
                "sweep": spec.name,
                "base": spec.base,
                "search": spec.algorithm,
                "num_samples": spec.num_samples,
                "scheduler": spec.scheduler.get("type"),
                "metric": spec.metric,
                "data.root": resolve_paths(base.data).root,
                "workers_per_trial": spec.workers,
                "cpu_per_worker": spec.cpu,
                "gpu_per_worker": spec.gpu,
                "confirm_top": spec.confirm_top,
                "confirm_seeds": ",".join(map(str, spec.confirm_seeds)),
            },
            max_epochs=base.train.epochs,
            base_params=flatten(base),
            seeds=spec.seeds,
            variants=spec.variants,
            search=self.search_record,
            tags=self.tags,
            parent_tags=environment_tags(self.environment),
        )

    def run_config(self, phase: str, trials: int) -> Any:
        from ray import tune

        s = self.sweep
        progress = ProgressCallback(
            s.base.train.epochs, s.spec.seeds, s.spec.variants, s.base.train.seed, s.spec.metric, total=trials
        )
        shown = [] if s.opts.verbose else [progress]
        return tune.RunConfig(
            name=phase,
            storage_path=s.storage_dir if phase == s.name else s.dir,
            callbacks=[self.tracker(), *shown],
            verbose=0,
            checkpoint_config=tune.CheckpointConfig(num_to_keep=1),
            failure_config=tune.FailureConfig(max_failures=1),
        )

    def fit(self, tuner) -> list[dict]:
        s = self.sweep
        return summarise(s.spec, fit_tuner(tuner, s.spec, s.resume_hint, s.dir), s.base.train.epochs)

    def search(self) -> list[dict]:
        """The search phase (restored when --resume continues it)."""
        from ray import tune

        s, spec = self.sweep, self.sweep.spec
        if s.previous is not None:
            log.info(f"resuming {storages.redact(s.dir)}")
            return self.fit(
                tune.Tuner.restore(s.dir, trainable=self.trainable, resume_unfinished=True, resume_errored=True)
            )
        param_space, searcher = build_param_space(spec, s.base)
        return self.fit(
            tune.Tuner(
                self.trainable,
                param_space=param_space,
                tune_config=tune.TuneConfig(
                    search_alg=searcher,
                    scheduler=make_scheduler(spec, s.base.train.epochs, s.dir),
                    # Repeater hands each Optuna configuration out once per seed: Tune counts trials
                    num_samples=expected_trials(spec) if spec.algorithm == "optuna" else 1,
                    max_concurrent_trials=tune_concurrency(spec),
                    # ASHA gets metric/mode through TuneConfig only; OptunaSearch already has them.
                    metric=spec.metric,
                    mode=spec.mode,
                    trial_dirname_creator=lambda t: t.trial_id,
                    reuse_actors=True,  # one worker process runs many trials (data.prepare.opened_data keeps its data)
                ),
                run_config=self.run_config(s.name, expected_trials(spec)),
            )
        )

    def run_cells(self, cells: list[dict], phase: str) -> list[dict]:
        """Trials of exactly these cells, in their own Tune folder (restored if it was interrupted)."""
        from ray import tune
        from ray.tune.search.basic_variant import BasicVariantGenerator

        s, spec = self.sweep, self.sweep.spec
        folder = storages.join(s.dir, phase)
        if s.previous is not None and storages.exists(storages.join(folder, "tuner.pkl")):
            tuner = tune.Tuner.restore(folder, trainable=self.trainable, resume_unfinished=True, resume_errored=True)
        else:
            tuner = tune.Tuner(
                self.trainable,
                param_space=cell_space(cells),
                tune_config=tune.TuneConfig(
                    search_alg=BasicVariantGenerator(points_to_evaluate=cells),
                    num_samples=len(cells),
                    max_concurrent_trials=spec.max_concurrent or None,
                    metric=spec.metric,
                    mode=spec.mode,
                    trial_dirname_creator=lambda t: t.trial_id,
                    reuse_actors=True,  # one worker process runs many trials (data.prepare.opened_data keeps its data)
                ),
                run_config=self.run_config(phase, len(cells)),
            )
        return [{**t, "phase": CONFIRM if phase == CONFIRM else MORE_SEEDS} for t in self.fit(tuner)]

    def confirm(self, trials: list[dict]) -> list[dict]:
        spec = self.sweep.spec
        cells = confirm_cells(spec, trials)
        if not cells:
            return []
        log.info(
            f"confirming the best {spec.confirm_top} configurations with seeds "
            f"{', '.join(map(str, spec.confirm_seeds))} at the full budget: {len(cells)} more trials"
        )
        return self.run_cells(cells, CONFIRM)

    def add_seeds(self, trials: list[dict]) -> list[dict]:
        s = self.sweep
        cells, seeds = more_seed_cells(s.spec, trials, s.opts.add_seeds, s.opts.top)
        log.info(
            f"adding seeds {', '.join(map(str, seeds))} to the top {s.opts.top or s.spec.confirm_top or 2} "
            f"configurations: {len(cells)} more trials"
        )
        return self.run_cells(cells, f"{MORE_SEEDS}_{max(seeds)}") if cells else []


def finish(sweep: Sweep, trials: list[dict], runner: PhaseRunner, clock: Stopwatch) -> dict:
    """The summary with its tables, written to the parent run (closed FINISHED or FAILED) and summary.json."""
    spec = sweep.spec
    summary = summary_of(spec, trials, sweep.resume_hint)
    table = format_table(summary["trials"], list(spec.space), multi_seed=len(seeds_run(trials)) > 1)
    configs = format_config_table(summary["configs"], spec.metric) if summary["configs_repeated"] else ""
    summary["table"] = table + (
        f"\n\nper configuration ({spec.metric}, full-budget trials):\n{configs}" if configs else ""
    )
    if summary["pareto"]:
        summary["table"] += "\n\n" + "\n".join(pareto_lines(summary["pareto"], spec.metric))
    finisher = runner.tracker()
    finisher.setup()
    finisher.finish(
        f"# {spec.name}\n\n{summary['table']}\n\nverdict: {summary['verdict']}\n",
        summary.get("best"),
        summary["verdict"],
        status=parent_status(summary),
        metric=spec.metric,
    )
    summary["parent_run_id"], summary["experiment_id"] = finisher.parent_id, finisher.experiment_id
    clock.lap("finish")
    summary["timings"] = clock.timings()
    summary["environment"] = runner.environment
    storages.write_text(storages.join(sweep.dir, "summary.json"), json.dumps(summary, indent=1, default=str))
    return summary
