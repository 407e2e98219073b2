"""The Ray Tune callback that writes a sweep's MLflow runs as its trials go: one parent run per sweep,
one child run per trial.

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

from vgs import metric_names
from vgs.results.plots import draw_sweep_plots, plot_metric_per_epoch, sweep_trials
from vgs.search_spaces.model import trial_overrides
from vgs.sweep.storage import redact
from vgs.sweep.tracking.records import run_label, search_params
from vgs.sweep.tracking.store import MODEL_TRAINING_VIEW, client, experiment_id
from vgs.sweep.trial_errors import error_reason, error_text

# How a trial ended, beside MLflow's status: completed and pruned are FINISHED, failed is FAILED,
# interrupted (Ctrl-C, SIGTERM; --resume continues it) is KILLED; running while it trains.
OUTCOME = "vgs.outcome"

# Keys of a trial's report that become MLflow metrics (step = our epoch).
METRIC_PREFIXES = metric_names.TRACKED_PREFIXES  # train_: loss, per-objective losses and batches
# params_*, encode_ms_per_s: the costs the parent run's Pareto plot reads from the child runs
METRIC_KEYS = (
    "lr",
    "epoch_seconds",
    "seconds_total",
    "best_epoch",
    "recognizer_best_epoch",  # pipe-ind: each part's own best epoch
    "text_image_best_epoch",
    "params_trainable",
    "params_total",
    "encode_ms_per_s",
)


class MlflowSweepCallback(Callback):
    """Logs trials of one sweep (identified by its Ray experiment folder) to MLflow."""

    def __init__(
        self,
        tracking_uri: str,
        experiment: str,
        sweep_name: str,
        sweep_dir: str,
        params: dict[str, Any],
        max_epochs: int,
        base_params: dict[str, Any],
        seeds: list[int],
        variants: dict | None = None,
        search: dict | None = None,
        tags: dict[str, str] | None = None,
        parent_tags: dict[str, str] | None = None,
    ):
        self.tracking_uri, self.experiment, self.sweep_name = tracking_uri, experiment, sweep_name
        self.search = search or {}  # search_record(spec): on the parent as search.json and parameters
        self.tags = tags or {}  # source_tags(): on the parent and every child
        self.parent_tags = parent_tags or {}  # environment_tags(): the driver's versions, CPU, GPU
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
        self.reopen(self.parent_id)

    def reopen(self, run_id: str) -> None:
        """A resumed (or next-phase) parent run is RUNNING again, without how it ended last time."""
        run = self.mlflow.get_run(run_id)
        for stale in ("vgs.error", "vgs.stopped"):
            if stale in run.data.tags:
                self.mlflow.delete_tag(run_id, stale)
        if run.info.status != "RUNNING":
            self.mlflow.update_run(run_id, status="RUNNING")

    def existing_parent(self) -> str | None:
        """This sweep's parent run, if one was made (matched by the sweep's folder)."""
        # matched in Python: a folder name may hold a quote, which MLflow's filter syntax cannot take
        found = [
            r
            for r in self.mlflow.search_runs(
                [self.experiment_id], filter_string="tags.`vgs.kind` = 'sweep'", max_results=50000
            )
            if r.data.tags.get("vgs.sweep_dir") == redact(self.sweep_dir)
        ]
        return found[0].info.run_id if found else None

    def fail(self, reason: str) -> None:
        """The driver is dying: its parent run (if it has one) ends FAILED with the reason, never RUNNING."""
        self.end(reason, "FAILED", "vgs.error")

    def stopped(self, reason: str) -> None:
        """The sweep was interrupted (Ctrl-C, SIGTERM) with its state saved: KILLED, not RUNNING;
        --resume sets it RUNNING again."""
        self.end(reason, "KILLED", "vgs.stopped")

    def end(self, reason: str, status: str, tag: str) -> None:
        """The parent run ends with `status` and the reason in `tag`; trials it left RUNNING end
        KILLED (they did not fail: --resume continues them)."""
        self.experiment_id = experiment_id(self.tracking_uri, self.experiment)
        run_id = self.parent_id or self.existing_parent()
        if not run_id:
            return
        running = self.mlflow.search_runs(
            [self.experiment_id],
            filter_string=f"tags.`mlflow.parentRunId` = '{run_id}' and attributes.status = 'RUNNING'",
            max_results=50000,
        )
        for child in running:
            self.mlflow.set_tag(child.info.run_id, OUTCOME, "interrupted")
            self.mlflow.set_terminated(child.info.run_id, "KILLED")
        self.mlflow.set_tag(run_id, tag, reason[:5000])
        self.mlflow.set_terminated(run_id, status)

    def find_or_create_parent(self) -> str:
        exp = self.experiment_id
        run_id = self.existing_parent()
        if run_id:
            return run_id
        run = self.mlflow.create_run(
            exp,
            run_name=Path(self.sweep_dir).name,
            tags={
                **self.tags,
                **self.parent_tags,
                "vgs.sweep": self.sweep_name,
                "vgs.sweep_dir": redact(self.sweep_dir),
                "vgs.kind": "sweep",
            },
        )
        from mlflow.entities import Param

        params = {**{k: str(v) for k, v in self.params.items()}, **(search_params(self.search) if self.search else {})}
        items = [Param(k, v) for k, v in params.items()]
        for a in range(0, len(items), 100):
            self.mlflow.log_batch(run.info.run_id, params=items[a : a + 100])
        if self.search:
            self.mlflow.log_text(run.info.run_id, json.dumps(self.search, indent=1, default=str), "search.json")
        return run.info.run_id

    def _run_for(self, trial) -> str:
        tid = trial.trial_id
        if tid in self.runs:
            return self.runs[tid]
        exp = self.experiment_id
        found = self.mlflow.search_runs(
            [exp],
            filter_string=f"tags.`vgs.trial_id` = '{tid}' and tags.`mlflow.parentRunId` = '{self.parent_id}'",
            max_results=1,
        )
        if found:  # resumed sweep: continue the same child run
            self.runs[tid] = found[0].info.run_id
            return self.runs[tid]
        overrides = trial_overrides(trial.config, self.seeds, self.variants)
        seed = overrides.get("train.seed", self.base_params.get("train.seed"))
        run = self.mlflow.create_run(
            exp,
            run_name=run_label(trial.config, seed),
            tags={
                **self.tags,
                "mlflow.parentRunId": self.parent_id,
                "vgs.trial_id": tid,
                "vgs.sweep": self.sweep_name,
                "vgs.kind": "trial",
            },
        )
        self.runs[tid] = run.info.run_id
        from mlflow.entities import Param

        resolved = {
            **self.base_params,
            **overrides,
            **{k: v for k, v in trial.config.items() if k.startswith("variant.")},
        }
        params = [Param(k, str(v)) for k, v in resolved.items()]
        for a in range(0, len(params), 100):
            self.mlflow.log_batch(run.info.run_id, params=params[a : a + 100])
        return run.info.run_id

    def _find_trial_run(self, trial_id: str | None) -> str | None:
        if not trial_id:
            return None
        found = self.mlflow.search_runs(
            [self.experiment_id or experiment_id(self.tracking_uri, self.experiment)],
            filter_string=f"tags.`vgs.trial_id` = '{trial_id}' and tags.`mlflow.parentRunId` = '{self.parent_id}'",
            max_results=1,
        )
        return found[0].info.run_id if found else None

    def on_trial_start(self, iteration, trials, trial, **info) -> None:
        run_id = self._run_for(trial)
        self.mlflow.set_tag(run_id, OUTCOME, "running")
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
        if result.get("worker_pid"):  # trials that share a worker process (Tune's reuse_actors) share it
            self.mlflow.set_tag(run_id, "vgs.worker_pid", str(result["worker_pid"]))
        now = int(time.time() * 1000)
        metrics = [
            Metric(k, float(v), now, step)
            for k, v in result.items()
            if isinstance(v, (int, float))
            and not isinstance(v, bool)
            and (k.startswith(METRIC_PREFIXES) or k in METRIC_KEYS)
        ]
        self.mlflow.log_batch(run_id, metrics=metrics)

    def on_trial_complete(self, iteration, trials, trial, **info) -> None:
        run_id = self._run_for(trial)
        epochs = int((trial.last_result or {}).get("epoch", 0))
        pruned = epochs < self.max_epochs
        self.mlflow.set_tag(run_id, "vgs.pruned", str(pruned).lower())
        self.mlflow.set_tag(run_id, "vgs.epochs_run", str(epochs))
        self.mlflow.set_tag(run_id, OUTCOME, "pruned" if pruned else "completed")
        self._log_checkpoint(run_id, trial)
        # Pruning is the scheduler's decision, not a failure: FINISHED, told apart by vgs.outcome
        # (MLflow's KILLED reads as a failure in the runs table; it is kept for interrupted runs).
        self.mlflow.set_terminated(run_id, "FINISHED")

    def on_trial_error(self, iteration, trials, trial, **info) -> None:
        run_id = self._run_for(trial)
        error = error_text(trial)
        # the reason first (the MLflow UI shows a tag's start), then the traceback's end
        reason = f"{error_reason(error)}\n\n{error[-4000:]}" if error else "trial failed (see Ray logs)"
        self.mlflow.set_tag(run_id, "vgs.error", reason)
        self.mlflow.set_tag(run_id, OUTCOME, "failed")
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

    def finish(
        self, summary_markdown: str, best: dict | None, verdict: str = "", status: str = "FINISHED", metric: str = ""
    ) -> None:
        """The sweep's answer on its parent run: summary.md, the best trial (best_trial.json, and its
        scores: best_<metric>, sel_val_*, test_*) and the seed-noise verdict."""
        if not self.parent_id:
            return
        best_run = best and (self.runs.get(best.get("trial_id")) or self._find_trial_run(best.get("trial_id")))
        self.mlflow.log_text(self.parent_id, summary_markdown, "summary.md")
        if verdict:
            self.mlflow.set_tag(self.parent_id, "vgs.verdict", verdict[:5000])
        if best:
            self.mlflow.log_text(self.parent_id, json.dumps(best, indent=1, default=str), "best_trial.json")
            if best_run:  # from the parent to the best trial's own run (metrics per epoch, checkpoint)
                self.mlflow.set_tag(self.parent_id, "vgs.best_run_id", best_run)
            # under the trial's own names: sel_val_* at its selected epoch, best_<metric>, test_*
            for k, v in best.items():
                if k.startswith(("val_", "test_")) and isinstance(v, (int, float)) and v == v:  # not NaN
                    self.mlflow.log_metric(self.parent_id, f"sel_{k}" if k.startswith("val_") else k, float(v))
            if isinstance(best.get(metric), (int, float)) and best[metric] == best[metric]:
                self.mlflow.log_metric(self.parent_id, f"best_{metric}", float(best[metric]))
        self.mlflow.set_tag(
            self.parent_id, "mlflow.note.content", self.description(summary_markdown, verdict, best_run)
        )
        self.log_plots()
        self.mlflow.set_terminated(self.parent_id, status)

    def description(self, summary_markdown: str, verdict: str, best_run: str | None) -> str:
        """The parent run's Description (MLflow shows it atop the run page): the verdict, a link to
        the best trial's run and the per-trial table, so the answer needs no artifact opened."""
        where = f"#/experiments/{self.experiment_id}/runs/{best_run}?{MODEL_TRAINING_VIEW}"
        link = f"[the best trial's run]({where})\n\n" if best_run else ""
        return f"**verdict:** {verdict or 'none'}\n\n{link}{summary_markdown.strip()}\n"[:20000]

    def test_per_epoch_plot(self, keys: list[str], folder: Path) -> list[Path]:
        """test_per_epoch.png (Mortazavi 2020 Fig. 2) where the trials scored the test split after
        every epoch (train.test_every_epoch): the metric's test twin, one line per trial."""
        metric = metric_names.EPOCH_TEST + self.search["metric"].removeprefix(metric_names.VAL)
        trials = [t for t in sweep_trials(self.mlflow, self.parent_id, keys, metric) if t.history]
        if not trials:
            return []
        plot_metric_per_epoch(trials, metric, folder / "test_per_epoch.png", self.search["mode"])
        return [folder / "test_per_epoch.png"]

    def log_plots(self) -> None:
        """The sweep's plots (vgs.results.plots) as artifacts plots/ of the parent run.  A plot that cannot
        be drawn is a tag, never a failed sweep."""
        import tempfile

        if not self.search:
            return
        keys = [k for k in self.search["space"] if k != "train.seed"]
        try:
            trials = sweep_trials(self.mlflow, self.parent_id, keys, self.search["metric"])
            with tempfile.TemporaryDirectory() as d:
                files = draw_sweep_plots(
                    trials,
                    keys,
                    self.search["space"],
                    self.search["metric"],
                    self.search["mode"],
                    Path(d),
                    importance=self.search["search"]["algorithm"] == "optuna",
                )
                files += self.test_per_epoch_plot(keys, Path(d))
                for f in files:
                    self.mlflow.log_artifact(self.parent_id, str(f), artifact_path="plots")
        except Exception as e:  # noqa: BLE001 - the sweep's results are already logged
            self.mlflow.set_tag(self.parent_id, "vgs.plot_error", f"{type(e).__name__}: {e}"[:500])
