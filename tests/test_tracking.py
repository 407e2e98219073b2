"""Child-run names, readable in MLflow's tables and chart legends; the tracking store's checks."""

import pytest

from vgs.sweep.tracking.records import run_label


def test_run_label_names_the_searched_values_and_the_seed():
    assert (
        run_label({"model.speech.layers": 1, "model.latent": 256, "__trial_index__": 0}, 0) == "layers=1 latent=256 s0"
    )
    assert (
        run_label({"data.text_fraction": 0.0385, "variant.model": "mtl-match", "train.seed": 2}, 2)
        == "text_fraction=0.0385 mtl-match s2"
    )
    assert run_label({}, None) == "base"


def test_a_relative_sqlite_uri_is_made_absolute_before_it_is_recorded(tmp_path, monkeypatch):
    """Issue 36 #10: sqlite:///rel.db was recorded as given, so --resume from another folder made an
    empty database there and crashed with "Run ... not found"."""
    from vgs.sweep.tracking.store import absolute_tracking_uri

    monkeypatch.chdir(tmp_path)
    assert absolute_tracking_uri("sqlite:///rel.db") == f"sqlite:///{tmp_path.resolve()}/rel.db"
    assert (
        absolute_tracking_uri("sqlite:///runs/x.db?timeout=5") == f"sqlite:///{tmp_path.resolve()}/runs/x.db?timeout=5"
    )
    for kept in ("sqlite:////abs/mlflow.db", "http://127.0.0.1:5000", "databricks"):
        assert absolute_tracking_uri(kept) == kept


def test_tracking_uri_is_checked_up_front_with_the_fix(tmp_path):
    import time

    import pytest

    from vgs.config import ConfigError
    from vgs.sweep.tracking.store import check_tracking_uri

    t0 = time.time()
    with pytest.raises(ConfigError, match="no MLflow server answers"):
        check_tracking_uri("http://127.0.0.1:1", timeout=2)
    assert time.time() - t0 < 10  # MLflow's own client retried for about 4 minutes
    with pytest.raises(ConfigError, match="sqlite:///"):
        check_tracking_uri(str(tmp_path / "mlruns"))
    with pytest.raises(ConfigError, match="does not exist"):
        check_tracking_uri(f"sqlite:///{tmp_path / 'no' / 'mlflow.db'}")


def test_two_processes_creating_one_sqlite_store_at_once_both_succeed(tmp_path):
    import subprocess
    import sys

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    code = (
        f"from vgs.sweep.tracking.store import check_tracking_uri, experiment_id; check_tracking_uri({uri!r}); "
        f"print(experiment_id({uri!r}, 'vgs-x'))"
    )
    procs = [
        subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for _ in range(2)
    ]
    outs = [p.communicate(timeout=300) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], [err[-2000:] for _, err in outs]


def test_a_corrupt_mlflow_database_is_one_line_naming_the_file(tmp_path):
    """Issue 26 #9: a truncated or corrupt mlflow.db gave a raw SQLAlchemy traceback."""
    from vgs.config import ConfigError
    from vgs.sweep.tracking.store import check_tracking_uri

    db = tmp_path / "mlflow.db"
    db.write_bytes(b"this is not sqlite" * 100)
    with pytest.raises(ConfigError) as e:
        check_tracking_uri(f"sqlite:///{db}")
    assert str(db) in str(e.value) and "corrupt or truncated" in str(e.value) and "\n" not in str(e.value)


def test_a_dying_driver_leaves_its_parent_failed_and_names_a_full_disk(tmp_path):
    """Issue 26 #3: with a full disk the driver died in Ray's EOFError and the parent stayed RUNNING.
    Any driver death now ends the parent FAILED with the reason; ENOSPC is named with the folder and
    its free space."""
    import errno

    from vgs.config import ConfigError
    from vgs.sweep.driver import driver_death
    from vgs.sweep.tracking.callback import MlflowSweepCallback
    from vgs.sweep.tracking.store import client

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    sweep_dir = tmp_path / "ray" / "smoke_20261204-101010"
    sweep_dir.mkdir(parents=True)

    class Runner:  # the driver's PhaseRunner, reduced to the tracker it hands out
        def tracker(self):
            return MlflowSweepCallback(uri, "vgs-smoke", "smoke", str(sweep_dir), {}, 1, {}, [0])

    started = Runner().tracker()
    started.setup()  # the parent a sweep makes when Tune starts

    class Sweep:
        dir, storage_dir, tracking_uri = str(sweep_dir), str(tmp_path / "ray"), uri

    full = OSError(errno.ENOSPC, "No space left on device", str(sweep_dir / "experiment_state.json"))
    try:
        raise EOFError("Ran out of input") from full
    except EOFError as e:
        dying = driver_death(Runner(), Sweep(), e)
    assert isinstance(dying, ConfigError)
    assert str(dying).startswith(f"storage full: {sweep_dir / 'experiment_state.json'} (") and "MiB free" in str(dying)
    parent = client(uri).get_run(started.parent_id)
    assert parent.info.status == "FAILED" and parent.data.tags["vgs.error"].startswith("storage full")

    other = RuntimeError("Tune lost its head node")
    assert driver_death(Runner(), Sweep(), other) is other
    assert client(uri).get_run(started.parent_id).data.tags["vgs.error"] == "RuntimeError: Tune lost its head node"


def test_a_tracking_server_gone_for_good_ends_the_sweep_in_one_line_with_the_resume_command(monkeypatch):
    """Issue 36 #11: a server down longer than MLflow's retries ended the sweep in 263 lines of
    tracebacks, without the resume command.  The error here is MLflow's own, from a real client
    whose server does not answer (its retries cut to none)."""
    import socket

    from mlflow.tracking import MlflowClient

    from vgs.config import ConfigError
    from vgs.sweep.driver import driver_death
    from vgs.sweep.tracking.store import unreachable_server

    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    uri = f"http://user:secret@127.0.0.1:{port}"
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    try:
        MlflowClient(uri).log_metric("0" * 32, "val_s2i_r10", 0.5)
    except Exception as e:  # noqa: BLE001 - whatever MLflow raises is what the driver sees
        gone = e

    class Sweep:
        tracking_uri, resume_hint = uri, "python -m vgs.sweep smoke --resume --storage /s"

    assert unreachable_server(RuntimeError("Tune callback failed"), uri) is None  # not the server
    assert unreachable_server(gone, "sqlite:////x/mlflow.db") is None
    try:
        raise RuntimeError("Tune callback failed") from gone
    except RuntimeError as e:
        dying = driver_death(None, Sweep(), e)  # never reaches for the tracker: the server is down
    assert isinstance(dying, ConfigError) and "\n" not in str(dying) and "secret" not in str(dying)
    assert str(dying) == (
        f"the tracking server http://user:***@127.0.0.1:{port} stopped answering (MLflow gave up after its retries); "
        "the trials so far are kept: start it again, then python -m vgs.sweep smoke --resume --storage /s"
    ), str(dying)
