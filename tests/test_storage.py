"""Results locations: folders and URIs (file:// here; s3:// and gs:// go through the same pyarrow code)."""

from pathlib import Path

import pytest

from vgs.config import ConfigError
from vgs.sweep import storage


def test_local_folder_and_file_uri_find_the_latest_restorable_sweep(tmp_path):
    for location in (str(tmp_path / "a"), f"file://{tmp_path / 'b'}"):
        root = storage.normalise(location)
        assert storage.latest_sweep(root, "gru_layers") is None
        for name, restorable in (
            ("gru_layers_20260101-000000", True),
            ("gru_layers_20260102-000000", True),
            ("gru_layers_20260103-000000", False),
            ("smoke_20260104-000000", True),
            ("gru_layers_grid_20260105-000000", True),
        ):  # another sweep, a longer name
            folder = storage.join(root, name)
            storage.normalise(folder)
            if restorable:
                storage.write_text(storage.join(folder, "tuner.pkl"), "x")
        assert storage.latest_sweep(root, "gru_layers") == "gru_layers_20260102-000000"
    assert (tmp_path / "b" / "gru_layers_20260102-000000" / "tuner.pkl").read_text() == "x"


def test_unknown_scheme_is_named():
    with pytest.raises(ConfigError, match="nosuch://bucket"):
        storage.normalise("nosuch://bucket/path")


def test_two_sweeps_started_in_one_second_get_their_own_folders(tmp_path):
    root = storage.normalise(str(tmp_path))
    first, second = storage.new_sweep_name(root, "smoke"), storage.new_sweep_name(root, "smoke")
    assert first != second and (tmp_path / first).is_dir() and (tmp_path / second).is_dir()
    if second == first + "-2":  # the same second: the later one sorts after
        for name in (first, second):
            storage.write_text(storage.join(storage.join(root, name), "tuner.pkl"), "x")
        assert storage.latest_sweep(root, "smoke") == second


def test_credentials_in_uris_are_redacted_for_printing_and_tags():
    assert storage.redact("http://alice:s3cret@mlflow.internal:5000") == "http://alice:***@mlflow.internal:5000"
    assert (
        storage.redact("s3://bucket/path?access_key=AK&secret_key=SK&region=us-east-1")
        == "s3://bucket/path?access_key=***&secret_key=***&region=us-east-1"
    )
    assert storage.redact("postgresql://vgs:pw@127.0.0.1/mlflow") == "postgresql://vgs:***@127.0.0.1/mlflow"
    assert storage.redact("/home/me/ray_results") == "/home/me/ray_results"
    assert storage.redact("http://mlflow.internal:5000") == "http://mlflow.internal:5000"


def test_every_form_of_credentials_is_redacted():
    """Issue 26 #8: a token as the user name, api_key/token query values, @ or / inside a password."""
    assert storage.redact("https://ghp_TOKEN123@mlflow.example:443") == "https://***@mlflow.example:443"
    assert storage.redact("http://bob:p@ss/w@rd@127.0.0.1:5999/api") == "http://bob:***@127.0.0.1:5999/api"
    redacted = storage.redact("https://mlflow.example/?api_key=K1&token=T2&x=1")
    assert "K1" not in redacted and "T2" not in redacted and "x=1" in redacted
    assert storage.split_credentials("http://u:p%40w@h:1/p?q=1") == ("http://h:1/p?q=1", "u", "p%40w")


def test_a_tracking_server_behind_basic_auth_is_reached_with_the_uri_credentials(tmp_path):
    """Issue 26 #8: http://user:pw@host was refused ("Name or service not known") though MLflow's client
    takes it; the check now sends the credentials as Basic auth to the host alone."""
    import base64
    import http.server
    import threading

    from vgs.sweep.tracking.store import check_tracking_uri

    seen = []

    class Health(http.server.BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802 (http.server's name)
            seen.append((self.path, self.headers.get("Authorization")))
            self.send_response(200)
            self.end_headers()
            self.wfile.write(b"OK")

        def log_message(self, *args):
            pass

    server = http.server.HTTPServer(("127.0.0.1", 0), Health)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        check_tracking_uri(f"http://alice:s3/cr@t@127.0.0.1:{server.server_port}")
    finally:
        server.shutdown()
    assert seen == [("/health", "Basic " + base64.b64encode(b"alice:s3/cr@t").decode())]


def test_a_storage_folder_that_cannot_be_used_is_named_before_anything_runs(tmp_path):
    normalise = storage.normalise
    (tmp_path / "a-file").write_text("")
    with pytest.raises(ConfigError, match="a-file: not a folder"):
        normalise(str(tmp_path / "a-file"))
    with pytest.raises(ConfigError, match=r"a-file/ray: cannot make the folder \(Not a directory\)"):
        normalise(str(tmp_path / "a-file" / "ray"))
    if Path("/proc/self").is_dir():  # a folder even root cannot make folders in
        with pytest.raises(ConfigError, match="--storage /proc: cannot make a folder in it"):
            normalise("/proc")
    assert normalise(str(tmp_path / "new" / "ray")) == str(tmp_path / "new" / "ray")
    assert [p.name for p in (tmp_path / "new" / "ray").iterdir()] == []  # the write test leaves nothing
