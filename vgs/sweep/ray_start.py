"""Starting Ray for a sweep: a local Ray listens on this machine's loopback interface only.

Ray 2.60 turns a "127.0.0.1" node address into the machine's network address and binds its GCS,
raylet, workers and agents on every interface; token authentication is on by default, but the
ports are still open to the network.  Ray keeps a loopback-only mode for laptops (its
single-machine mode on macOS and Windows, switched by RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER): a
local sweep starts Ray in that mode.  A sweep given a cluster (--address or RAY_ADDRESS)
connects to it unchanged, once something answers at its address.
"""

from __future__ import annotations

import atexit
import contextlib
import ipaddress
import os
import signal
import socket
import threading
from collections.abc import Iterator
from typing import Any

from vgs.config import ConfigError
from vgs.log import get_logger

log = get_logger(__name__)

# Ray reads it at import (ray._private.ray_constants.ENABLE_RAY_CLUSTER); its child processes
# read it from their environment.  "0": this node's address is the loopback address.
CLUSTER_SWITCH = "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"


def joins_a_cluster(address: str | None) -> bool:
    return bool(address or os.environ.get("RAY_ADDRESS"))


@contextlib.contextmanager
def loopback_only() -> Iterator[None]:
    """Around the ray.init that starts a local Ray: its node address is 127.0.0.1 (or ::1), so
    every Ray process binds there.  The switch is set back afterwards: the driver may later start
    other programs that should see the user's own environment."""
    from ray._private import ray_constants  # already imported with Ray: the flag is read at each call

    saved_env, saved_flag = os.environ.get(CLUSTER_SWITCH), ray_constants.ENABLE_RAY_CLUSTER
    os.environ[CLUSTER_SWITCH] = "0"
    ray_constants.ENABLE_RAY_CLUSTER = False
    try:
        yield
    finally:
        ray_constants.ENABLE_RAY_CLUSTER = saved_flag
        if saved_env is None:
            os.environ.pop(CLUSTER_SWITCH, None)
        else:
            os.environ[CLUSTER_SWITCH] = saved_env


@contextlib.contextmanager
def shielded_from_termination() -> Iterator[None]:
    """Around the ray.init that starts a local Ray: its processes start with SIGTERM blocked.

    Slurm's scancel and preemption, and `kill -TERM -<group>`, send SIGTERM to every process of
    the job, Ray's GCS and raylet included.  Once they die, the driver's core worker ends the
    process with status 1 before any Python runs: no saved state, no message, runs left RUNNING.
    A blocked signal stays pending, and a signal mask is inherited across fork and exec, so Ray's
    processes (and the workers the raylet starts) live on while the driver, whose own mask is
    restored here, stops the sweep the way Ctrl-C does.  ray.shutdown still ends them (SIGKILL
    after its grace second).  Ray already blocks SIGINT in them the same way."""
    if threading.current_thread() is not threading.main_thread() or not hasattr(signal, "pthread_sigmask"):
        yield
        return
    previous = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGTERM})
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, previous)


def is_loopback(host: str) -> bool:
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        return host == "localhost"
    mapped = getattr(ip, "ipv4_mapped", None)
    return ip.is_loopback or bool(mapped and mapped.is_loopback)


def unreachable(address: str, timeout_s: float = 5.0) -> str | None:
    """Why nothing answers at a cluster address `host:port` or `ray://host:port` (None: something
    listens there, or a form Ray resolves itself, such as "auto").  Ray itself would retry a wrong
    address for minutes, printing a warning every few seconds."""
    if address in ("auto", "local") or ("://" in address and not address.startswith("ray://")):
        return None
    host, sep, port = address.removeprefix("ray://").rpartition(":")
    if not sep or not port.isdigit():
        return None
    try:
        with socket.create_connection((host.strip("[]"), int(port)), timeout=timeout_s):
            return None
    except OSError as e:
        return e.strerror or str(e) or type(e).__name__


def init_ray(address: str | None = None, **options: Any) -> None:
    """ray.init: join the cluster at `address` (or RAY_ADDRESS, or one started on this machine by
    `ray start`), else start a loopback-only local Ray."""
    import ray

    if joins_a_cluster(address):
        given = f"--address {address}" if address else f"RAY_ADDRESS={os.environ['RAY_ADDRESS']}"
        why = unreachable(address or os.environ["RAY_ADDRESS"])
        if why:
            raise ConfigError(
                f"{given}: no Ray cluster answers there ({why}); start one (`ray start --head` on that "
                f"machine) or correct the address (without it, a sweep starts a local Ray)"
            )
        ray.init(address=address, **options)
        return
    with loopback_only(), shielded_from_termination():
        ray.init(**options)  # joins a Ray already running here (`ray start`), else starts one
    atexit.register(stop_ray)  # before Ray's own exit hook (last registered, first run)
    node = ray.util.get_node_ip_address()
    if not is_loopback(node):  # a Ray started here by `ray start`: its ports are as that opened them
        log.info(
            f"joined the Ray already running on this machine ({ray.get_runtime_context().gcs_address}); "
            f"with none running, vgs starts its own on loopback only"
        )


def stop_ray() -> None:
    """ray.shutdown, then SIGKILL to every process of the local Ray this driver started.

    Those processes block SIGTERM (shielded_from_termination): Ray's own shutdown would spend a
    grace second on each (about 4 s per sweep) and then SIGKILL only the ones it started, leaving
    the agents the raylet started orphaned and alive.  They hold nothing a sweep keeps (its state
    and checkpoints are in its storage folder).  A Ray joined, not started, is only disconnected."""
    import psutil
    import ray
    from ray._private import worker as ray_worker

    node = ray_worker._global_node
    family: list[psutil.Process] = []
    started_here: list[Any] = [i for infos in node.all_processes.values() for i in infos] if node is not None else []
    for info in started_here:
        try:
            started = psutil.Process(info.process.pid)
            family += [started, *started.children(recursive=True)]
        except psutil.NoSuchProcess:
            continue
    ray_worker._global_node = None  # ray.shutdown then disconnects this driver and stops nothing
    ray.shutdown()
    if node is not None and node.is_head():
        node.destroy_external_storage()
    for process in family:
        with contextlib.suppress(psutil.NoSuchProcess):
            process.kill()
    psutil.wait_procs(family, timeout=10)
