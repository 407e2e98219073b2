"""The local Ray a sweep starts listens on loopback only (vgs.sweep.ray_start): every socket that
Ray's processes listen on, read from /proc, is 127.0.0.1 or ::1."""

import ipaddress
import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from vgs.config import ConfigError
from vgs.sweep.ray_start import CLUSTER_SWITCH, init_ray, is_loopback, joins_a_cluster, unreachable

# As the sweep's driver does: Ray is imported (by vgs.sweep.driver) before it is started.
START_AND_LIST = """
import json, os, sys
sys.path.insert(0, sys.argv[1])
import vgs.sweep.driver
from vgs.sweep.ray_start import init_ray
from listening import listening_sockets
init_ray(None, num_cpus=1, include_dashboard=False, log_to_driver=False)
import ray

@ray.remote
def pid():  # a worker process, listening too
    return os.getpid()

ray.get(pid.remote())
print(json.dumps({"sockets": listening_sockets(os.getpid()), "switch": os.environ.get(sys.argv[2])}))
ray.shutdown()
"""

LISTENING = '''
import ipaddress, os
from pathlib import Path


def _address(hex_ip):
    raw = bytes.fromhex(hex_ip)
    if len(raw) == 4:
        return str(ipaddress.IPv4Address(raw[::-1]))
    return str(ipaddress.IPv6Address(b"".join(raw[i : i + 4][::-1] for i in range(0, 16, 4))))


def _tree(root):
    parents = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        parents.setdefault(int(fields[1]), []).append(int(stat.parent.name))
    tree, todo = [], [root]
    while todo:
        pid = todo.pop()
        tree.append(pid)
        todo += parents.get(pid, [])
    return tree


def listening_sockets(root):
    """[process name, address, port] of every TCP socket listening in the process tree of root."""
    listening = {}
    for table in ("tcp", "tcp6"):
        for line in Path(f"/proc/net/{table}").read_text().splitlines()[1:]:
            local, state, inode = line.split()[1], line.split()[3], line.split()[9]
            if state == "0A":
                ip, port = local.split(":")
                listening[inode] = (_address(ip), int(port, 16))
    found = []
    for pid in _tree(root):
        try:
            name = Path(f"/proc/{pid}/comm").read_text().strip()
            links = [os.readlink(fd) for fd in Path(f"/proc/{pid}/fd").iterdir()]
        except OSError:
            continue
        for link in links:
            inode = link[len("socket:[") : -1] if link.startswith("socket:[") else None
            if inode in listening:
                found.append([name, *listening[inode]])
    return found
'''


@pytest.mark.skipif(not Path("/proc/net/tcp").exists(), reason="reads listening sockets from Linux's /proc")
def test_a_local_sweeps_ray_listens_on_loopback_only(tmp_path):
    (tmp_path / "listening.py").write_text(LISTENING)
    env = {k: v for k, v in os.environ.items() if k not in ("RAY_ADDRESS", CLUSTER_SWITCH)}
    run = subprocess.run(
        [sys.executable, "-c", START_AND_LIST, str(tmp_path), CLUSTER_SWITCH],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
        timeout=300,
    )
    assert run.returncode == 0, run.stderr[-3000:]
    result = json.loads(run.stdout.strip().splitlines()[-1])
    names = {name for name, _, _ in result["sockets"]}
    # the GCS, the raylet, the driver and a worker at least (Ray 2.60 bound each on every interface)
    assert {"gcs_server", "raylet"} <= names and len(result["sockets"]) >= 4, result
    open_ = [s for s in result["sockets"] if not is_loopback(s[1])]
    assert not open_, f"listening beyond loopback: {open_}"
    assert result["switch"] is None  # the driver's own environment is left as it was


def test_loopback_addresses_and_what_counts_as_joining_a_cluster(monkeypatch):
    for host in ("127.0.0.1", "::1", "::ffff:127.0.0.1", "localhost", "127.0.1.1"):
        assert is_loopback(host), host
    for host in ("0.0.0.0", "::", "192.0.2.2", str(ipaddress.IPv6Address("2001:db8::1")), "example.org"):
        assert not is_loopback(host), host
    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    assert not joins_a_cluster(None) and joins_a_cluster("10.0.0.5:6379")
    monkeypatch.setenv("RAY_ADDRESS", "auto")
    assert joins_a_cluster(None)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_a_cluster_address_where_nothing_answers_is_refused_at_once_naming_it(monkeypatch):
    # Ray itself retries such an address for minutes, a warning every few seconds
    port = _free_port()
    assert unreachable(f"127.0.0.1:{port}") and unreachable(f"ray://127.0.0.1:{port}")
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen()
        assert unreachable(f"127.0.0.1:{server.getsockname()[1]}") is None
    assert unreachable("auto") is None and unreachable("http://127.0.0.1:8265") is None  # Ray's own forms
    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    with pytest.raises(ConfigError, match=rf"--address 127.0.0.1:{port}: no Ray cluster answers there"):
        init_ray(f"127.0.0.1:{port}")
    monkeypatch.setenv("RAY_ADDRESS", f"127.0.0.1:{port}")
    with pytest.raises(ConfigError, match=rf"RAY_ADDRESS=127.0.0.1:{port}: no Ray cluster answers there"):
        init_ray(None)
