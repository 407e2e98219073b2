"""Synchronous successive halving: a Tune scheduler for sweeps of a few configurations.

Ray's ASHA is asynchronous: a trial that reaches a rung while the rung is still nearly empty
is promoted at once. With the handful of configurations a paper ablation has (6 in the demo's
space) the first trials to arrive run to the end whatever their rank, which costs most of
what pruning should save (docs/results.md, "Pruning against the grid"). Here every configuration reaches a
rung, pausing there (its checkpoint kept), before the best 1/reduction_factor go on; the rest
stop. Rungs are grace_period * reduction_factor**k below max_t; the survivors of the last rung
run to max_t. Paused trials hold no CPU. Tune's max_concurrent_trials would count the paused
ones as running and stall the sweep, so it is not used: trials run as the cluster's resources
allow (the sweep's resources per trial), and paused ones resume within max_concurrent.

Tune does not save a scheduler's state with the experiment (a restored sweep gets the scheduler
as it was created), so this one writes its own to `state_file` at every change and reads it
back on `--resume`: the rung reached, who is still in, and who already waits at the rung. Tune
restarts every unfinished trial of a restored sweep, so one that was waiting may train an epoch
past the rung before it pauses again (and a survivor may so finish before the next rung); the
scores compared are always those at the rung's epoch.
"""

from __future__ import annotations

import json
import math

from ray.tune.experiment import Trial
from ray.tune.schedulers import FIFOScheduler, TrialScheduler

from vgs.log import get_logger
from vgs.sweep import storage as storages

log = get_logger(__name__)


def rungs(max_t: int, grace_period: int, reduction_factor: float) -> list[int]:
    """Epochs at which the sweep halves: grace, grace*rf, ... while below max_t."""
    out, t = [], grace_period
    while t < max_t:
        out.append(int(t))
        t = math.ceil(t * reduction_factor)
    return out


def survivors(scores: dict[str, float], reduction_factor: float, sign: float) -> list[str]:
    """The best ceil(n / reduction_factor) trial ids (at least one); sign +1 keeps the highest."""
    keep = max(1, math.ceil(len(scores) / reduction_factor))
    return sorted(scores, key=lambda tid: -sign * scores[tid])[:keep]


class SynchronousHalving(FIFOScheduler):
    def __init__(
        self,
        *,
        trials: int,
        max_t: int,
        grace_period: int = 1,
        reduction_factor: float = 3,
        max_concurrent: int | None = None,
        time_attr: str = "epoch",
        state_file: str | None = None,
    ):
        super().__init__()
        self.rungs = rungs(max_t, grace_period, reduction_factor)
        self.reduction_factor = reduction_factor
        self.total = trials  # the sweep's trial count: Tune creates trials one by one as it goes
        self.max_concurrent = max_concurrent
        self.time_attr = time_attr
        self.score_key: str | None = None
        self.sign = 1.0
        self.stage = 0  # index of the rung every contender must reach next
        self.contenders: set[str] | None = None  # None: every trial of the sweep (the first rung)
        self.at_rung: dict[str, float] = {}  # trials waiting at the current rung, and their score
        self.gone: set[str] = set()  # contenders that ended without reaching it (error, finished early)
        self.scores: dict[str, dict[str, float]] = {}  # every trial's score per epoch reported
        self.state_file = state_file
        self.state_read = False  # read once, at the first hook: on --resume this object is the one first pickled

    def set_search_properties(self, metric: str | None, mode: str | None, **spec) -> bool:
        if metric:
            self.score_key = metric
        if mode:
            self.sign = 1.0 if mode == "max" else -1.0
        return True

    # -- Tune's hooks

    def on_trial_add(self, tune_controller, trial: Trial) -> None:
        self._read_state()
        if trial.status in (Trial.TERMINATED, Trial.ERROR):  # restored sweep: ended before this run
            self.gone.add(trial.trial_id)

    def on_trial_result(self, tune_controller, trial: Trial, result: dict) -> str:
        self._read_state()
        epoch = result.get(self.time_attr)
        if self.stage >= len(self.rungs) or epoch is None or epoch < self.rungs[self.stage]:
            return TrialScheduler.CONTINUE
        if self.contenders is not None and trial.trial_id not in self.contenders:
            return TrialScheduler.STOP  # a trial this sweep already stopped, come back after a restore
        seen = self.scores.setdefault(trial.trial_id, {})
        seen[str(epoch)] = float(result[self.score_key])  # str: the keys survive the state file's JSON
        if trial.trial_id not in self.at_rung:
            # a trial restored past the rung (it waited there when the sweep stopped) keeps its rung score
            rung = str(self.rungs[self.stage])
            self.at_rung[trial.trial_id] = seen.get(rung, seen[str(epoch)])
        self._write_state()
        return self._decide(tune_controller, current=trial) or TrialScheduler.PAUSE

    def on_trial_complete(self, tune_controller, trial: Trial, result: dict) -> None:
        self._ended(tune_controller, trial)

    def on_trial_error(self, tune_controller, trial: Trial) -> None:
        self._ended(tune_controller, trial)

    def on_trial_remove(self, tune_controller, trial: Trial) -> None:
        self._ended(tune_controller, trial)

    def choose_trial_to_run(self, tune_controller) -> Trial | None:
        self._read_state()  # a restored sweep re-adds no trial: this may be the first hook it calls
        everyone = tune_controller.get_trials()
        if self.max_concurrent and sum(t.status == Trial.RUNNING for t in everyone) >= self.max_concurrent:
            return None
        # Those waiting at the rung stay paused (or pending, after a restore) until it is decided.
        ready = [
            t
            for t in everyone
            if t.trial_id not in self.at_rung and (self.contenders is None or t.trial_id in self.contenders)
        ]
        for status in (Trial.PENDING, Trial.PAUSED):
            for trial in ready:
                if trial.status == status:
                    return trial
        return None

    def debug_string(self) -> str:
        rung = self.rungs[self.stage] if self.stage < len(self.rungs) else "none"
        return f"synchronous halving: rungs {self.rungs}, waiting at {rung}: {len(self.at_rung)}"

    # -- the halving

    def _write_state(self) -> None:
        if self.state_file:
            storages.write_text(
                self.state_file,
                json.dumps(
                    {
                        "stage": self.stage,
                        "at_rung": self.at_rung,
                        "scores": self.scores,
                        "contenders": None if self.contenders is None else sorted(self.contenders),
                    }
                ),
            )

    def _read_state(self) -> None:
        if self.state_read:
            return
        self.state_read = True
        if self.state_file and storages.exists(self.state_file):
            state = json.loads(storages.read_text(self.state_file))
            self.stage, self.at_rung, self.scores = state["stage"], state["at_rung"], state["scores"]
            self.contenders = None if state["contenders"] is None else set(state["contenders"])

    def _ended(self, tune_controller, trial: Trial) -> None:
        self._read_state()
        if trial.trial_id not in self.at_rung:
            self.gone.add(trial.trial_id)
            self._decide(tune_controller, current=None)

    def _everyone_there(self) -> bool:
        there = set(self.at_rung) | self.gone
        if self.contenders is None:
            return len(there) >= self.total
        return self.contenders <= there

    def _decide(self, tune_controller, current: Trial | None) -> str | None:
        """Halve once every contender is at the rung; the action for `current`, or None to pause it."""
        if self.stage >= len(self.rungs) or not self.at_rung or not self._everyone_there():
            return None
        kept = survivors(self.at_rung, self.reduction_factor, self.sign)
        stopped = [tid for tid in self.at_rung if tid not in kept]
        log.info(
            f"halving at epoch {self.rungs[self.stage]}: the best {len(kept)} of {len(self.at_rung)} "
            f"configurations go on"
            + (f" to epoch {self.rungs[self.stage + 1]}" if self.stage + 1 < len(self.rungs) else " to the full budget")
        )
        self.stage, self.contenders, self.at_rung, self.gone = self.stage + 1, set(kept), {}, set()
        self._write_state()
        for trial in tune_controller.get_trials():
            if (
                trial.trial_id in stopped
                and trial is not current
                and trial.status not in (Trial.TERMINATED, Trial.ERROR)
            ):
                tune_controller.stop_trial(trial)
        if current is None:
            return None
        return TrialScheduler.CONTINUE if current.trial_id in kept else TrialScheduler.STOP
