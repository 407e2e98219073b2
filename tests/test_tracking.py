"""Child-run names, readable in MLflow's tables and chart legends; the tracking store's checks."""

import pytest

from vgs.sweep.tracking import run_label


def test_run_label_names_the_searched_values_and_the_seed():
    assert (
        run_label({"model.speech.layers": 1, "model.latent": 256, "__trial_index__": 0}, 0) == "layers=1 latent=256 s0"
    )
    assert (
        run_label({"data.text_fraction": 0.0385, "variant.model": "mtl-match", "train.seed": 2}, 2)
        == "text_fraction=0.0385 mtl-match s2"
    )
    assert run_label({}, None) == "base"


def test_tracking_uri_is_checked_up_front_with_the_fix(tmp_path):
    import time

    import pytest

    from vgs.config import ConfigError
    from vgs.sweep.tracking import check_tracking_uri

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
        f"from vgs.sweep.tracking import check_tracking_uri, experiment_id; check_tracking_uri({uri!r}); "
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
    from vgs.sweep.tracking import check_tracking_uri

    db = tmp_path / "mlflow.db"
    db.write_bytes(b"this is not sqlite" * 100)
    with pytest.raises(ConfigError) as e:
        check_tracking_uri(f"sqlite:///{db}")
    assert str(db) in str(e.value) and "corrupt or truncated" in str(e.value) and "\n" not in str(e.value)
