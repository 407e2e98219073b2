"""Where a sweep's runs are kept: the MLflow tracking URI (made absolute, checked before Ray starts),
its client, the sweep's experiment and artifact location, and how a store that stopped answering is
told apart from other errors.  What the runs hold is vgs.sweep.tracking.runs."""

from __future__ import annotations

import base64
from pathlib import Path

from vgs.config import ConfigError
from vgs.data.locking import exclusive
from vgs.sweep.storage import redact, split_credentials


def client(tracking_uri: str):
    from mlflow.tracking import MlflowClient

    return MlflowClient(tracking_uri=tracking_uri)


def absolute_tracking_uri(uri: str) -> str:
    """A SQLite URI with its file made absolute (sqlite:///rel.db -> sqlite:////cwd/rel.db): trials
    run in other folders, and --resume may be run from another one, where the relative name made an
    empty database and then "Run ... not found".  Other URIs are returned as they are."""
    if uri.startswith("sqlite:///") and not uri[len("sqlite:///") :].startswith("/"):
        path, query = (uri[len("sqlite:///") :].split("?", 1) + [""])[:2]
        return f"sqlite:///{Path(path).expanduser().resolve()}" + (f"?{query}" if query else "")
    return uri


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


# how MLflow's HTTP client reports a server it has stopped reaching, after its retries (minutes)
_UNREACHABLE = ("Max retries exceeded", "Failed to establish a new connection", "Connection refused")


def unreachable_server(error: BaseException, uri: str) -> str | None:
    """If `error` (or an error it came from) is MLflow giving up on a tracking server that stopped
    answering, one line saying so (the server's address, credentials redacted); else None."""
    if not uri.startswith(("http://", "https://")):
        return None
    for e in error_chain(error):
        if isinstance(e, ConnectionError) or any(marker in str(e) for marker in _UNREACHABLE):
            return f"the tracking server {redact(uri)} stopped answering (MLflow gave up after its retries)"
    return None


def error_chain(error: BaseException | None) -> list[BaseException]:
    """An error and the errors it was raised from or while handling, outermost first."""
    out: list[BaseException] = []
    seen: set[int] = set()
    while error is not None and id(error) not in seen:
        seen.add(id(error))
        out.append(error)
        error = error.__cause__ or error.__context__
    return out


def _why(error: Exception) -> str:
    """The line of a database error that says what is wrong (SQLAlchemy wraps sqlite3's)."""
    text = str(getattr(error, "orig", None) or error).strip().splitlines()
    reason = text[0] if text else type(error).__name__
    if "not a database" in reason or "malformed" in reason:
        return f"{reason} (a corrupt or truncated file: move it aside, or point --tracking-uri at another)"
    if "readonly" in reason or "unable to open" in reason or isinstance(error, PermissionError):
        return f"{reason} (the file or its folder is not writable here)"
    return reason


EXPERIMENT_KIND, MODEL_TRAINING = "mlflow.experimentKind", "custom_model_development"
MODEL_TRAINING_VIEW = "workflowType=machine_learning"  # a UI link's query: the model-training pages


def experiment_id(tracking_uri: str, name: str) -> str:
    from mlflow.exceptions import MlflowException

    c = client(tracking_uri)
    exp = c.get_experiment_by_name(name)
    if exp:
        return exp.experiment_id
    try:
        # the kind opens the experiment in MLflow 3's model-training view (runs, metrics, charts);
        # without it the UI may guess GenAI (evaluations, traces) for a run opened from a link
        return c.create_experiment(
            name, artifact_location=artifact_location(tracking_uri, name), tags={EXPERIMENT_KIND: MODEL_TRAINING}
        )
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
