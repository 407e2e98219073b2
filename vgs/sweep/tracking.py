"""MLflow tracking: one parent run per sweep, one child run per trial.

Our own small Ray Tune callback rather than Ray's stock MLflowLoggerCallback, which logs every
key, marks pruned trials FINISHED and duplicates runs on restore.  It runs in the sweep driver
only, so a SQLite tracking URI has a single writer.
"""

from __future__ import annotations

import base64
import json
import time
from pathlib import Path
from typing import Any

from ray.tune import Callback

from vgs import metric_names
from vgs.config import ConfigError
from vgs.data.locking import exclusive
from vgs.results.plots import draw_sweep_plots, sweep_trials
from vgs.sweep.spec_model import trial_overrides
from vgs.sweep.storage import redact, split_credentials

# Keys of a trial's report that become MLflow metrics (step = our epoch).
METRIC_PREFIXES = metric_names.TRACKED_PREFIXES  # train_: loss, per-objective losses and batches
METRIC_KEYS = ("lr", "epoch_seconds", "seconds_total", "best_epoch")


def client(tracking_uri: str):
    from mlflow.tracking import MlflowClient

    return MlflowClient(tracking_uri=tracking_uri)


def check_tracking_uri(uri: str, timeout: float = 5.0) -> None:
    """Before a sweep starts: the MLflow store answers (a server within `timeout` seconds; MLflow's
    own client retries for minutes) or its SQLite database can be made.  A new database is made
    under a lock: two sweeps starting together both ran MLflow's schema migration, and one failed."""

    if uri.startswith(("http://", "https://")):
        import urllib.error
        import urllib.request

        bare, user, password = split_credentials(uri)  # urlopen takes no user:password@ in the host
        request = urllib.request.Request(bare.split("?")[0].rstrip("/") + "/health")
        if user is not None:
            token = base64.b64encode(f"{user}:{password or ''}".encode()).decode()
            request.add_header("Authorization", f"Basic {token}")
        try:
            urllib.request.urlopen(request, timeout=timeout)
        except urllib.error.HTTPError:
            pass  # something answered (e.g. an authenticating proxy): MLflow will say more
        except (urllib.error.URLError, OSError) as e:
            raise ConfigError(
                f"--tracking-uri {redact(uri)}: no MLflow server answers within {timeout:g} s "
                f"({getattr(e, 'reason', e)}); start one (mlflow server --host 127.0.0.1 --port 5000) "
                f"or use a database file, sqlite:///PATH/mlflow.db"
            ) from e
    elif uri.startswith("sqlite:///"):
        db = Path(uri[len("sqlite:///") :])
        if not db.parent.is_dir():
            raise ConfigError(f"--tracking-uri {uri}: the folder {db.parent} does not exist")
        try:
            with exclusive(db.with_name(f".{db.name}.lock"), f"the MLflow database {db}", announce=False):
                client(uri).search_experiments(max_results=1)  # creates the schema once
        except ConfigError:
            raise
        except Exception as e:  # noqa: BLE001 - SQLAlchemy, sqlite3 and OS errors: one line naming the file
            raise ConfigError(f"--tracking-uri {uri}: {db} cannot be used as MLflow's database: {_why(e)}") from e
    elif "://" not in uri:
        raise ConfigError(
            f"--tracking-uri {uri}: a folder is MLflow's file store, which MLflow 3 refuses here; "
            f"use sqlite:///{Path(uri).expanduser().resolve() / 'mlflow.db'} or http://HOST:5000"
        )


def _why(error: Exception) -> str:
    """The line of a database error that says what is wrong (SQLAlchemy wraps sqlite3's)."""
    text = str(getattr(error, "orig", None) or error).strip().splitlines()
    reason = text[0] if text else type(error).__name__
    if "not a database" in reason or "malformed" in reason:
        return f"{reason} (a corrupt or truncated file: move it aside, or point --tracking-uri at another)"
    if "readonly" in reason or "unable to open" in reason or isinstance(error, PermissionError):
        return f"{reason} (the file or its folder is not writable here)"
    return reason


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
        db = Path(tracking_uri[len("sqlite:///") :])
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


def source_tags() -> dict[str, str]:
    """MLflow's source tags for every run of a sweep: the entry point and, in a git checkout,
    its commit (and whether the work tree had changes); an installed package gives its version."""
    import subprocess
    import sys
    from importlib.metadata import PackageNotFoundError, version

    tags = {"mlflow.source.type": "LOCAL", "mlflow.source.name": "vgs.sweep"}
    try:
        tags["vgs.version"] = version("vgs")
    except PackageNotFoundError:
        pass
    root = Path(__file__).resolve().parents[2]  # the checkout, where vgs runs from one
    try:
        git = lambda *a: subprocess.run(
            ["git", "-C", str(root), *a], capture_output=True, text=True, timeout=10, check=True
        ).stdout.strip()
        if git("rev-parse", "--show-toplevel") == str(root):  # vgs's own checkout, not a repo around it
            tags["mlflow.source.git.commit"] = git("rev-parse", "HEAD")
            tags["mlflow.source.git.branch"] = git("rev-parse", "--abbrev-ref", "HEAD")
            tags["vgs.git_dirty"] = str(bool(git("status", "--porcelain", "--untracked-files=no"))).lower()
    except (OSError, subprocess.SubprocessError):
        pass
    tags["mlflow.source.name"] = f"{Path(sys.executable).name} -m vgs.sweep"
    return tags


def search_record(spec) -> dict[str, Any]:
    """What a sweep searched, for its parent run: space, metric and mode, search algorithm and
    sampler, scheduler with its settings, seeds and the confirmation phase."""
    return {
        "space": spec.space,
        "variants": spec.variants,
        "metric": spec.metric,
        "mode": spec.mode,
        "search": {
            "algorithm": spec.algorithm,
            "num_samples": spec.num_samples,
            "sampler": spec.sampler,
            "seed": spec.search_seed,
        },
        "scheduler": spec.scheduler,
        "seeds": spec.seeds,
        "confirm": {"top": spec.confirm_top, "seeds": spec.confirm_seeds},
        "base": spec.base,
        "overrides": spec.overrides,
    }


def search_params(record: dict[str, Any]) -> dict[str, str]:
    """The search record flattened into parent-run parameters ('space.model.latent': 'choice [64, 128]')."""
    params = {
        f"space.{k}": " ".join(f"{kind} {values}" for kind, values in d.items()) for k, d in record["space"].items()
    }
    params.update({f"search.{k}": str(v) for k, v in record["search"].items()})
    params.update({f"scheduler.{k}": str(v) for k, v in record["scheduler"].items()})
    params.update({"mode": record["mode"], "seeds": ",".join(map(str, record["seeds"]))})
    return {k: v[:6000] for k, v in params.items()}


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
    ):
        self.tracking_uri, self.experiment, self.sweep_name = tracking_uri, experiment, sweep_name
        self.search = search or {}  # search_record(spec): on the parent as search.json and parameters
        self.tags = tags or {}  # source_tags(): on the parent and every child
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
        self.experiment_id = experiment_id(self.tracking_uri, self.experiment)
        run_id = self.parent_id or self.existing_parent()
        if run_id:
            self.mlflow.set_tag(run_id, "vgs.error", reason[:5000])
            self.mlflow.set_terminated(run_id, "FAILED")

    def find_or_create_parent(self) -> str:
        exp = self.experiment_id
        run_id = self.existing_parent()
        if run_id:
            self.mlflow.update_run(run_id, status="RUNNING")
            return run_id
        run = self.mlflow.create_run(
            exp,
            run_name=Path(self.sweep_dir).name,
            tags={
                **self.tags,
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

    def finish(
        self, summary_markdown: str, best: dict | None, verdict: str = "", status: str = "FINISHED", metric: str = ""
    ) -> None:
        """The sweep's answer on its parent run: summary.md, the best trial (best_trial.json, and its
        scores: best_<metric>, sel_val_*, test_*) and the seed-noise verdict."""
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
            # under the trial's own names: sel_val_* at its selected epoch, best_<metric>, test_*
            for k, v in best.items():
                if k.startswith(("val_", "test_")) and isinstance(v, (int, float)) and v == v:  # not NaN
                    self.mlflow.log_metric(self.parent_id, f"sel_{k}" if k.startswith("val_") else k, float(v))
            if isinstance(best.get(metric), (int, float)) and best[metric] == best[metric]:
                self.mlflow.log_metric(self.parent_id, f"best_{metric}", float(best[metric]))
        self.log_plots()
        self.mlflow.set_terminated(self.parent_id, status)

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
                for f in files:
                    self.mlflow.log_artifact(self.parent_id, str(f), artifact_path="plots")
        except Exception as e:  # noqa: BLE001 - the sweep's results are already logged
            self.mlflow.set_tag(self.parent_id, "vgs.plot_error", f"{type(e).__name__}: {e}"[:500])
