"""Ray Tune wiring of a sweep: the search space and searcher, the scheduler, the trainable with its
resources, and fitting a Tuner so that Ctrl-C / SIGTERM leave a state that --resume continues.
Ray, Ray Tune and Optuna are imported inside the functions: `--dry-run` and the tests of the pure
parts never load them."""

from __future__ import annotations

import logging
import os
import signal
from typing import Any

from vgs.config import Config, ConfigError, flatten, to_dict
from vgs.log import get_logger
from vgs.search_spaces.model import PRUNING_SCHEDULERS, SweepSpec, expected_trials, sampler_settings, space_contains
from vgs.sweep import storage as storages
from vgs.sweep.trial import run_trial

log = get_logger(__name__)


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
    samplers = {
        "tpe": optuna.samplers.TPESampler,
        "random": optuna.samplers.RandomSampler,
        "bruteforce": optuna.samplers.BruteForceSampler,
    }
    # The base config's own values are the first point, so the sweep always measures its starting point.
    flat = flatten(base)
    start = {k: flat.get(k) for k in spec.space}
    in_space = all(k in flat and space_contains(d, flat[k]) for k, d in spec.space.items())
    # OptunaSearch owns the space, so it gets metric and mode itself (DESIGN.md).
    searcher = OptunaSearch(
        space=dists,
        metric=spec.metric,
        mode=spec.mode,
        points_to_evaluate=[start] if in_space else None,
        sampler=samplers[spec.sampler](**sampler_settings(spec.sampler, spec.search_seed)),
    )
    constants: dict[str, Any] = {}
    if len(spec.seeds) > 1:
        searcher = Repeater(searcher, repeat=len(spec.seeds), set_index=True)
    else:
        constants["train.seed"] = spec.seeds[0]
    return constants, searcher


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
        from vgs.sweep.halving import SynchronousHalving

        return SynchronousHalving(
            trials=expected_trials(spec),
            max_t=max_epochs,
            grace_period=grace,
            reduction_factor=reduction,
            max_concurrent=spec.max_concurrent or None,
            state_file=storages.join(sweep_dir, "halving.json"),
        )
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
    short = [
        f"{need:g} {name}"
        for name, need, have in (("GPU", gpu, cluster.get("GPU", 0)), ("CPU", cpu, cluster.get("CPU", 0)))
        if need > have
    ]
    if not short:
        return
    per = f" ({spec.workers} workers)" if spec.workers > 1 else ""
    message = (
        f"sweep '{spec.name}' asks for {cpu:g} CPU and {gpu:g} GPU per trial{per}, but Ray sees "
        f"{cluster.get('CPU', 0):g} CPU and {cluster.get('GPU', 0):g} GPU; lower it with "
        f"--resources cpu=1,gpu=0 (or run on a machine/cluster that has {', '.join(short)})"
    )
    if local:
        raise ConfigError(message)
    log.warning(f"warning: {message}; waiting for the autoscaler")


DRIVER_MEMORY = 256 * 2**20  # bytes reserved for a multi-worker trial's driving function


def make_trainable(spec: SweepSpec, base: Config, sweep_dir: str):
    """run_trial with its fixed arguments and resources.  A one-worker trial holds the CPU/GPU it
    trains on; a multi-worker trial's function only drives a TorchTrainer whose workers hold them."""
    from ray import tune

    per_worker = {"CPU": spec.cpu, **({"GPU": spec.gpu} if spec.gpu else {})}
    fn = tune.with_parameters(
        run_trial,
        base=to_dict(base),
        seeds=spec.seeds,
        variants=spec.variants,
        workers=spec.workers,
        worker_resources=per_worker,
        train_storage=sweep_dir,
    )
    if spec.workers > 1:  # no CPU (a 2-core machine runs 2 workers), but a head bundle cannot be empty
        return tune.with_resources(fn, {"cpu": 0, "memory": DRIVER_MEMORY})
    return tune.with_resources(fn, {"cpu": spec.cpu, "gpu": spec.gpu})


def fit_tuner(tuner, spec: SweepSpec, resume_hint: str, sweep_dir: str):
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
        raise SweepInterrupted(
            f"sweep '{spec.name}' interrupted; its state is saved in {storages.redact(sweep_dir)}. Continue it "
            f"with: {resume_hint}  (it keeps its own data, overrides and tracking URI)"
        )
    return results


def cell_space(cells: list[dict]) -> dict:
    """A Tune space that holds every cell (BasicVariantGenerator then runs exactly the cells)."""
    from ray import tune

    keys = dict.fromkeys(k for c in cells for k in c)
    return {k: tune.choice(list(dict.fromkeys(c[k] for c in cells))) for k in keys}
