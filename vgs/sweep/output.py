"""What a sweep prints while it runs: one line per trial-epoch from the driver, named like the
trial's MLflow run, and Ray's, Optuna's and MLflow's routine log lines kept out of the way.

Trials train quietly; the driver sees every report, so its lines are never interleaved, folded
by Ray's log de-duplication or prefixed with a worker's pid.  `--verbose` brings the workers'
own output (and every library log line) back.
"""

from __future__ import annotations

import logging
import warnings
from typing import Any

from ray.tune import Callback

from vgs import metric_names
from vgs.log import get_logger, quiet_mlflow
from vgs.search_spaces.model import trial_overrides
from vgs.sweep.tracking.records import run_label
from vgs.sweep.trial_errors import error_reason, error_text

log = get_logger(__name__)

SHOWN = metric_names.PROGRESS  # validation scores on a progress line, where a trial reports them

# Routine lines of Ray Tune and Optuna that say nothing a vgs user can act on.
NOISE = (
    "Study.stop` is supposed to be invoked",
    "`max_concurrent_trials` will be ignored",
    "Wrote the latest version of all result files",
    "A new study created in memory",
    "Token authentication is enabled for this Ray cluster",
    # a failed trial's traceback (tens of lines; Ray's out-of-memory kill, forty): the driver prints
    # its one-line reason, and its MLflow run's vgs.error tag keeps the traceback
    "Trial task failed for trial",
    "Trials did not complete:",
    "Failed to fetch metrics for",
)  # on every local ray.init


def progress_line(label: str, result: dict[str, Any], epochs: int) -> str:
    """'[layers=1 latent=256 s0] epoch 2/3 loss 0.1513 val s2i_r10 0.350 i2s_r10 0.452 (44.1 s)'."""
    shown = " ".join(
        f"{metric_names.base_name(k)} {result[k]:.3f}" for k in SHOWN if isinstance(result.get(k), (int, float))
    )
    workers = f", {result['workers']} workers" if result.get("workers", 1) > 1 else ""
    return (
        f"[{label}] epoch {int(result.get('epoch', 0))}/{epochs} loss {result.get('train_loss', float('nan')):.4f} "
        f"val {shown} ({result.get('epoch_seconds', 0.0):.1f} s{workers})"
    )


class ProgressCallback(Callback):
    """Prints, in the driver, each trial's epochs and how it ended (completed, pruned, failed)."""

    total = 0  # for a callback unpickled from a sweep folder written before it had one

    def __init__(
        self, max_epochs: int, seeds: list[int], variants: dict | None, base_seed: int, metric: str, total: int
    ):
        self.max_epochs, self.seeds, self.variants, self.base_seed = max_epochs, seeds, variants or {}, base_seed
        self.metric = metric
        self.total = total  # the phase's trials: a searcher creates them one at a time
        self.last: dict[str, dict] = {}

    def _label(self, trial) -> str:
        seed = trial_overrides(trial.config, self.seeds, self.variants).get("train.seed", self.base_seed)
        return run_label(trial.config, seed)

    def _print(self, line: str) -> None:
        log.info(line)

    def on_trial_result(self, iteration, trials, trial, result, **info) -> None:
        self.last[trial.trial_id] = result
        self._print(progress_line(self._label(trial), result, self.max_epochs))

    def on_trial_complete(self, iteration, trials, trial, **info) -> None:
        result = self.last.get(trial.trial_id) or trial.last_result or {}
        epoch, best = int(result.get("epoch", 0)), result.get(f"sel_{self.metric}")
        score = f", {self.metric} {best:.3f} at epoch {result.get('best_epoch')}" if isinstance(best, float) else ""
        fate = "completed" if epoch >= self.max_epochs else f"pruned after epoch {epoch}/{self.max_epochs}"
        self._print(f"[{self._label(trial)}] {fate}{score}  ({trials_done(trials, trial, self.total)} trials done)")

    def on_trial_recover(self, iteration, trials, trial, **info) -> None:
        again = "retrying it (from its last checkpoint, if it saved one)"
        self._print(f"[{self._label(trial)}] failed: {trial_failure(trial)}; {again}")

    def on_trial_error(self, iteration, trials, trial, **info) -> None:
        self._print(f"[{self._label(trial)}] failed: {trial_failure(trial)} (--verbose shows the trial's output)")


def trial_failure(trial: Any) -> str:
    """Why a trial failed, in one line, from the error file Tune wrote for it."""
    return error_reason(error_text(trial)) or "no error recorded (see the Ray logs)"


def trials_done(trials: list, ending: Any, total: int) -> str:
    """ "3/8": the phase's ended trials, counting the one ending now, of all it will run.  Tune's
    list holds only the trials created so far (and, after --resume, those restored), so it is not
    the total."""
    done = sum(t.status in ("TERMINATED", "ERROR") for t in trials if t is not ending) + 1
    return f"{done}/{max(total, len(trials), done)}"


class _DropNoise(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return not any(n in record.getMessage() for n in NOISE)


def quiet_libraries() -> None:
    """Ray Tune's and Optuna's routine lines out; their warnings and errors stay."""
    import optuna

    quiet_mlflow()
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
    for name in ("mlflow.store.db.utils", "alembic.runtime.migration"):
        logging.getLogger(name).setLevel(logging.WARNING)
    noise = _DropNoise()
    for name in ("ray.tune", "ray.tune.tune", "ray.tune.search.optuna.optuna_search", "ray"):
        logger = logging.getLogger(name)
        logger.addFilter(noise)
        for handler in logger.handlers:
            handler.addFilter(noise)
