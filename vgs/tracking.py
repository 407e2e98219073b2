"""MLflow tracking: one parent run per sweep, one child run per trial.

Our own small Ray Tune callback rather than Ray's stock MLflowLoggerCallback, which logs every
key, marks pruned trials FINISHED and duplicates runs on restore.  It runs in the sweep driver
only, so a SQLite tracking URI has a single writer.
"""
from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from ray.tune import Callback

from vgs.searchspace import trial_overrides
from vgs.storage import redact

# Keys of a trial's report that become MLflow metrics (step = our epoch).
METRIC_PREFIXES = ("val_", "best_val_", "test_", "train_", "analysis_")  # train_: loss, per-task losses and batches
METRIC_KEYS = ("lr", "epoch_seconds", "seconds_total", "best_epoch")


def client(tracking_uri: str):
    from mlflow.tracking import MlflowClient

    return MlflowClient(tracking_uri=tracking_uri)


def check_tracking_uri(uri: str, timeout: float = 5.0) -> None:
    """Before a sweep starts: the MLflow store answers (a server within `timeout` seconds; MLflow's
    own client retries for minutes) or its SQLite database can be made.  A new database is made
    under a lock: two sweeps starting together both ran MLflow's schema migration, and one failed."""
    from vgs.config import ConfigError
    from vgs.data.locking import exclusive

    if uri.startswith(("http://", "https://")):
        import urllib.error
        import urllib.request

        try:
            urllib.request.urlopen(uri.rstrip("/") + "/health", timeout=timeout)
        except urllib.error.HTTPError:
            pass  # something answered (e.g. an authenticating proxy): MLflow will say more
        except (urllib.error.URLError, OSError) as e:
            raise ConfigError(f"--tracking-uri {redact(uri)}: no MLflow server answers within {timeout:g} s "
                              f"({getattr(e, 'reason', e)}); start one (mlflow server --host 127.0.0.1 --port 5000) "
                              f"or use a database file, sqlite:///PATH/mlflow.db") from e
    elif uri.startswith("sqlite:///"):
        db = Path(uri[len("sqlite:///"):])
        if not db.parent.is_dir():
            raise ConfigError(f"--tracking-uri {uri}: the folder {db.parent} does not exist")
        with exclusive(db.with_name(f".{db.name}.lock"), f"the MLflow database {db}", quiet=True):
            client(uri).search_experiments(max_results=1)  # creates the schema once
    elif "://" not in uri:
        raise ConfigError(f"--tracking-uri {uri}: a folder is MLflow's file store, which MLflow 3 refuses here; "
                          f"use sqlite:///{Path(uri).expanduser().resolve() / 'mlflow.db'} or http://HOST:5000")


def experiment_id(tracking_uri: str, name: str) -> str:
    from mlflow.exceptions import MlflowException

    c = client(tracking_uri)
    exp = c.get_experiment_by_name(name)
    if exp:
        return exp.experiment_id
    try:
        return c.create_experiment(name, artifact_location=artifact_location(tracking_uri, name))
    except MlflowException:  # another sweep made it a moment ago
        exp = c.get_experiment_by_name(name)
        if exp is None:
            raise
        return exp.experiment_id


def artifact_location(tracking_uri: str, experiment: str) -> str | None:
    """Artifacts of a SQLite store go beside the database file (MLflow's default is ./mlruns in
    whatever folder the command runs from); a tracking server decides for itself."""
    if tracking_uri.startswith("sqlite:///"):
        db = Path(tracking_uri[len("sqlite:///"):])
        return (db.parent / "mlartifacts" / experiment).resolve().as_uri()
    return None


def run_label(config: dict[str, Any], seed: Any) -> str:
    """A child run's name: the values its trial searched, short enough for a chart legend
    ('layers=1 latent=256 s0', 'pipe-seq/full s1'); a variant shows its name alone."""
    parts = []
    for k, v in config.items():
        if k.startswith("__") or k == "train.seed":
            continue
        v = f"{v:g}" if isinstance(v, float) else str(v)
        parts.append(v if k.startswith("variant.") else f"{k.rsplit('.', 1)[-1]}={v}")
    if seed is not None:
        parts.append(f"s{seed}")
    return " ".join(parts)[:200] or "base"


class MlflowSweepCallback(Callback):
    """Logs trials of one sweep (identified by its Ray experiment folder) to MLflow."""

    def __init__(self, tracking_uri: str, experiment: str, sweep_name: str, sweep_dir: str,
                 params: dict[str, Any], max_epochs: int, base_params: dict[str, Any], seeds: list[int],
                 variants: dict | None = None):
        self.tracking_uri, self.experiment, self.sweep_name = tracking_uri, experiment, sweep_name
        self.sweep_dir, self.params, self.max_epochs = sweep_dir, params, max_epochs
        self.base_params = base_params  # resolved base config; a trial's own values override it
        self.seeds = seeds
        self.variants = variants or {}
        self.parent_id: str | None = None
        self.experiment_id: str | None = None
        self.runs: dict[str, str] = {}  # trial_id -> MLflow run id
        self.last_epoch: dict[str, int] = {}  # MLflow run id -> last epoch logged
        self._client = None

    # Ray pickles callbacks with the experiment state; keep only plain data in that state.
    def get_state(self) -> dict:
        return {"parent_id": self.parent_id, "runs": dict(self.runs), "last_epoch": dict(self.last_epoch)}

    def set_state(self, state: dict) -> None:
        self.parent_id, self.runs = state.get("parent_id"), dict(state.get("runs", {}))
        self.last_epoch = dict(state.get("last_epoch", {}))

    def __getstate__(self):
        return {k: v for k, v in self.__dict__.items() if k != "_client"} | {"_client": None}

    @property
    def mlflow(self):
        if self._client is None:
            self._client = client(self.tracking_uri)
        return self._client

    def setup(self, **info) -> None:
        self.experiment_id = experiment_id(self.tracking_uri, self.experiment)
        self.parent_id = self.parent_id or self.find_or_create_parent()

    def find_or_create_parent(self) -> str:
        exp = self.experiment_id
        # matched in Python: a folder name may hold a quote, which MLflow's filter syntax cannot take
        found = [r for r in self.mlflow.search_runs([exp], filter_string="tags.`vgs.kind` = 'sweep'", max_results=50000)
                 if r.data.tags.get("vgs.sweep_dir") == redact(self.sweep_dir)]
        if found:
            run_id = found[0].info.run_id
            self.mlflow.update_run(run_id, status="RUNNING")
            return run_id
        run = self.mlflow.create_run(exp, run_name=Path(self.sweep_dir).name,
                                     tags={"vgs.sweep": self.sweep_name, "vgs.sweep_dir": redact(self.sweep_dir),
                                           "vgs.kind": "sweep"})
        for k, v in self.params.items():
            self.mlflow.log_param(run.info.run_id, k, v)
        return run.info.run_id

    def _run_for(self, trial) -> str:
        tid = trial.trial_id
        if tid in self.runs:
            return self.runs[tid]
        exp = self.experiment_id
        found = self.mlflow.search_runs(
            [exp], filter_string=f"tags.`vgs.trial_id` = '{tid}' and tags.`mlflow.parentRunId` = '{self.parent_id}'",
            max_results=1)
        if found:  # resumed sweep: continue the same child run
            self.runs[tid] = found[0].info.run_id
            return self.runs[tid]
        overrides = trial_overrides(trial.config, self.seeds, self.variants)
        seed = overrides.get("train.seed", self.base_params.get("train.seed"))
        run = self.mlflow.create_run(exp, run_name=run_label(trial.config, seed),
                                     tags={"mlflow.parentRunId": self.parent_id, "vgs.trial_id": tid,
                                           "vgs.sweep": self.sweep_name, "vgs.kind": "trial"})
        self.runs[tid] = run.info.run_id
        from mlflow.entities import Param

        resolved = {**self.base_params, **overrides,
                    **{k: v for k, v in trial.config.items() if k.startswith("variant.")}}
        params = [Param(k, str(v)) for k, v in resolved.items()]
        for a in range(0, len(params), 100):
            self.mlflow.log_batch(run.info.run_id, params=params[a:a + 100])
        return run.info.run_id

    def _find_trial_run(self, trial_id: str | None) -> str | None:
        if not trial_id:
            return None
        found = self.mlflow.search_runs(
            [self.experiment_id or experiment_id(self.tracking_uri, self.experiment)],
            filter_string=f"tags.`vgs.trial_id` = '{trial_id}' and tags.`mlflow.parentRunId` = '{self.parent_id}'",
            max_results=1)
        return found[0].info.run_id if found else None

    def on_trial_start(self, iteration, trials, trial, **info) -> None:
        run_id = self._run_for(trial)
        self.mlflow.update_run(run_id, status="RUNNING")

    def on_trial_result(self, iteration, trials, trial, result, **info) -> None:
        from mlflow.entities import Metric

        run_id = self._run_for(trial)
        step = int(result.get("epoch", 0))
        if run_id not in self.last_epoch:  # a run continued after --resume: what it logged already
            history = self.mlflow.get_metric_history(run_id, "train_loss")
            self.last_epoch[run_id] = max((h.step for h in history), default=0)
        if step <= self.last_epoch[run_id]:
            # An epoch replayed after a restore from an earlier checkpoint (a killed worker, or a
            # Ctrl-C before the epoch's checkpoint was saved): the replay is deterministic, so the
            # first value stands and each epoch appears once.
            return
        self.last_epoch[run_id] = step
        if result.get("node_id"):  # where the trial (rank 0) ran: the node can change after a restore
            self.mlflow.set_tag(run_id, "vgs.node_id", str(result["node_id"]))
            self.mlflow.set_tag(run_id, "vgs.node_ip", str(result.get("node_ip", "")))
        now = int(time.time() * 1000)
        metrics = [Metric(k, float(v), now, step) for k, v in result.items()
                   if isinstance(v, (int, float)) and not isinstance(v, bool)
                   and (k.startswith(METRIC_PREFIXES) or k in METRIC_KEYS)]
        self.mlflow.log_batch(run_id, metrics=metrics)

    def on_trial_complete(self, iteration, trials, trial, **info) -> None:
        run_id = self._run_for(trial)
        epochs = int((trial.last_result or {}).get("epoch", 0))
        pruned = epochs < self.max_epochs
        self.mlflow.set_tag(run_id, "vgs.pruned", str(pruned).lower())
        self.mlflow.set_tag(run_id, "vgs.epochs_run", str(epochs))
        self._log_checkpoint(run_id, trial)
        # A pruned trial did not finish its schedule: KILLED, not FINISHED, so it is never
        # mistaken for a completed run in the UI.
        self.mlflow.set_terminated(run_id, "KILLED" if pruned else "FINISHED")

    def on_trial_error(self, iteration, trials, trial, **info) -> None:
        run_id = self._run_for(trial)
        error = ""
        if trial.error_file and Path(trial.error_file).exists():
            error = Path(trial.error_file).read_text()[-4000:]
        self.mlflow.set_tag(run_id, "vgs.error", error or "trial failed (see Ray logs)")
        self.mlflow.set_terminated(run_id, "FAILED")

    def _log_checkpoint(self, run_id: str, trial) -> None:
        ckpt = trial.checkpoint
        path = (trial.last_result or {}).get("checkpoint_path")  # a Ray Train trial's (TuneReportCallback)
        if ckpt is None and path:
            from ray.train import Checkpoint

            ckpt = Checkpoint(path)
        if ckpt is None:
            return
        try:
            with ckpt.as_directory() as d:
                best = Path(d) / "best.pt"
                if best.exists():
                    self.mlflow.log_artifact(run_id, str(best), artifact_path="checkpoint")
        except Exception as e:  # an artifact store problem must not stop the sweep
            self.mlflow.set_tag(run_id, "vgs.artifact_error", str(e)[:500])

    def finish(self, summary_markdown: str, best: dict | None, verdict: str = "", status: str = "FINISHED") -> None:
        """The sweep's answer on its parent run: summary.md, the best trial (best_trial.json, and its
        validation and test scores as best_val_* / best_test_* metrics) and the seed-noise verdict."""
        if not self.parent_id:
            return
        self.mlflow.log_text(self.parent_id, summary_markdown, "summary.md")
        if verdict:
            self.mlflow.set_tag(self.parent_id, "vgs.verdict", verdict[:5000])
        if best:
            self.mlflow.log_text(self.parent_id, json.dumps(best, indent=1, default=str), "best_trial.json")
            best_run = self.runs.get(best.get("trial_id")) or self._find_trial_run(best.get("trial_id"))
            if best_run:  # from the parent to the best trial's own run (metrics per epoch, checkpoint)
                self.mlflow.set_tag(self.parent_id, "vgs.best_run_id", best_run)
            for k, v in best.items():
                if k.startswith(("val_", "test_")) and isinstance(v, (int, float)) and v == v:  # not NaN
                    self.mlflow.log_metric(self.parent_id, f"best_{k}", float(v))
        self.mlflow.set_terminated(self.parent_id, status)
