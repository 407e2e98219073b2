"""A real (if small) cluster on one machine: `ray start --head` plus a second `ray start` node
(separate raylet processes), `mlflow server` in front of a real PostgreSQL with artifacts proxied
over HTTP, and a sweep submitted to the cluster whose trials run on both nodes and log to the one
server; a trial that runs out of memory is failed with the reason while the others finish.
Needs Debian's PostgreSQL binaries (scripts/test.sh installs them where it can)."""

import contextlib
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import pytest

PG_BIN = Path(os.environ.get("VGS_PG_BIN", "/usr/lib/postgresql/15/bin"))


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _as_postgres_user(cmd: list[str]) -> list[str]:
    """PostgreSQL refuses to run as root: run it as the 'postgres' account Debian's package creates."""
    if os.geteuid() != 0:
        return cmd
    return ["runuser", "-u", "postgres", "--", *cmd]


@pytest.fixture()
def postgres(tmp_path):
    initdb = PG_BIN / "initdb"
    if not initdb.exists():
        pytest.skip(f"PostgreSQL server binaries not found in {PG_BIN} (apt-get install postgresql, or set VGS_PG_BIN)")
    if os.geteuid() == 0 and shutil.which("runuser") is None:
        pytest.skip("running as root without runuser: PostgreSQL cannot be started")
    # pytest's tmp folders are private to root; the postgres account needs a folder it can reach
    data = Path(tempfile.mkdtemp(prefix="vgs-pg-"))
    if os.geteuid() == 0:
        os.chmod(data, 0o700)
        shutil.chown(data, "postgres")
    port = _free_port()
    done = subprocess.run(
        _as_postgres_user([str(initdb), "-D", str(data), "-U", "vgs", "--auth=trust"]), capture_output=True, text=True
    )
    if done.returncode:
        pytest.fail(f"initdb failed: {done.stdout[-1500:]}{done.stderr[-1500:]}")
    subprocess.run(
        _as_postgres_user(
            [
                str(PG_BIN / "pg_ctl"),
                "-D",
                str(data),
                "-l",
                str(data / "log"),
                "-w",
                "-o",
                f"-p {port} -k {data} -c listen_addresses=127.0.0.1",
                "start",
            ]
        ),
        check=True,
        capture_output=True,
    )
    yield f"postgresql://vgs@127.0.0.1:{port}/postgres"
    subprocess.run(
        _as_postgres_user([str(PG_BIN / "pg_ctl"), "-D", str(data), "-m", "immediate", "stop"]), capture_output=True
    )
    shutil.rmtree(data, ignore_errors=True)


@pytest.fixture()
def mlflow_server(postgres, tmp_path):
    port = _free_port()
    log = open(tmp_path / "mlflow-server.log", "w")
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "mlflow",
            "server",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--backend-store-uri",
            postgres,
            "--artifacts-destination",
            str(tmp_path / "artifacts"),
            "--workers",
            "1",
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    for _ in range(120):
        try:
            urllib.request.urlopen(f"{url}/health", timeout=2)
            break
        except OSError:
            if proc.poll() is not None:
                pytest.fail(f"mlflow server exited: {(tmp_path / 'mlflow-server.log').read_text()[-3000:]}")
            time.sleep(1)
    else:
        proc.kill()
        pytest.fail("mlflow server did not answer in 120 s")
    yield url
    proc.terminate()
    proc.wait(30)


@pytest.fixture()
def two_node_ray(tmp_path, monkeypatch):
    ray = str(Path(sys.executable).with_name("ray"))
    port = _free_port()
    # Ray 2.60 clusters authenticate nodes and drivers with a shared token; this cluster has its own.
    token = tmp_path / "ray_auth_token"
    token.write_text(secrets.token_hex(32))
    monkeypatch.setenv("RAY_AUTH_MODE", "token")
    monkeypatch.setenv("RAY_AUTH_TOKEN_PATH", str(token))
    env = {**os.environ, "RAY_DEDUP_LOGS": "0"}
    env.pop("RAY_ADDRESS", None)
    # Its own temp folder (short: Ray's socket paths live there): `ray start` records the cluster's
    # address there, not in /tmp/ray where any local ray.init() on this machine would find and join
    # it, and the test stops only this cluster's processes (`ray stop` stops every Ray here).
    temp = Path(tempfile.mkdtemp(prefix="vgsray", dir="/tmp"))
    common = ["--num-cpus", "1", "--num-gpus", "0", "--disable-usage-stats", "--temp-dir", str(temp)]
    try:
        subprocess.run(
            [ray, "start", "--head", "--port", str(port), "--include-dashboard", "false", *common],
            check=True,
            capture_output=True,
            env=env,
        )
        subprocess.run(
            [ray, "start", "--address", f"127.0.0.1:{port}", *common], check=True, capture_output=True, env=env
        )
        yield f"127.0.0.1:{port}"
    finally:
        _stop_processes_of(temp)
        shutil.rmtree(temp, ignore_errors=True)


def _stop_processes_of(temp: Path) -> None:
    """Kill the processes whose command line names `temp` (this cluster's GCS, raylets and agents;
    their workers end with their raylet), read from /proc."""
    pids = []
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        with contextlib.suppress(OSError):
            if str(temp).encode() in cmdline.read_bytes():
                pids.append(int(cmdline.parent.name))
    for pid in pids:
        with contextlib.suppress(OSError):
            os.kill(pid, signal.SIGKILL)
    for _ in range(300):  # gone within seconds (a killed process may linger as a zombie of ray start)
        if not any(Path(f"/proc/{pid}/cmdline").exists() and Path(f"/proc/{pid}/cmdline").read_bytes() for pid in pids):
            break
        time.sleep(0.1)


SWEEP = """
description: two trials that fit and one that cannot (no machine has the memory for a 262144-wide GRU)
base: cpu-tiny
overrides: {data.builtin_images: 80, train.epochs: 1, train.batch_size: 16}
space:
  model.latent: {choice: [64, 128, 262144]}
search: {algorithm: grid}
metric: val_s2i_r10
mode: max
resources: {cpu: 1, gpu: 0}
max_concurrent: 2
"""


@pytest.mark.slow
def test_sweep_on_two_nodes_logs_to_one_mlflow_server(two_node_ray, mlflow_server, tmp_path, vgs_home):
    env = {**os.environ, "VGS_HOME": str(vgs_home)}  # the session's 80-image corpus, built once
    env.pop("RAY_ADDRESS", None)
    (tmp_path / "cluster_sweep.yaml").write_text(SWEEP)
    run = subprocess.run(
        [
            sys.executable,
            "-m",
            "vgs.sweep",
            str(tmp_path / "cluster_sweep.yaml"),
            "--address",
            two_node_ray,
            "--tracking-uri",
            mlflow_server,
            "--storage",
            str(tmp_path / "ray"),
        ],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env=env,
        timeout=400,
    )
    assert run.returncode == 0, run.stdout[-2000:] + run.stderr[-4000:]
    # the trial that cannot fit failed with the reason; the sweep went on and finished the others
    assert "failed: " in run.stdout and "out of CPU memory" in run.stdout, run.stdout[-3000:]

    from mlflow.tracking import MlflowClient

    client = MlflowClient(mlflow_server)  # over HTTP: the server wrote them to PostgreSQL
    exp = client.get_experiment_by_name("vgs-cluster_sweep")
    trials = [r for r in client.search_runs([exp.experiment_id]) if r.data.tags.get("vgs.kind") == "trial"]
    done = [t for t in trials if t.info.status == "FINISHED"]
    failed = [t for t in trials if t.info.status == "FAILED"]
    assert len(done) == 2 and len(failed) == 1, [(t.info.status, t.data.params.get("model.latent")) for t in trials]
    assert failed[0].data.params["model.latent"] == "262144"
    assert "out of CPU memory" in failed[0].data.tags["vgs.error"]
    # one CPU per node and one CPU per trial: the two trials ran at once, one on each node
    assert len({t.data.tags["vgs.node_id"] for t in done}) == 2, [t.data.tags for t in done]
    # the checkpoint went through the server's artifact proxy and comes back the same way
    best = client.download_artifacts(done[0].info.run_id, "checkpoint/best.pt", str(tmp_path / "down"))
    assert Path(best).stat().st_size > 1000
    assert done[0].info.artifact_uri.startswith("mlflow-artifacts:")
