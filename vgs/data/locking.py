"""An exclusive lock between processes on one machine (or one shared file system that honours
flock), for work that two sweeps or trials may start at once: generating the built-in corpus,
building a feature store.  The second process waits, then finds the work done."""

from __future__ import annotations

import contextlib
import fcntl
import os
import time
from pathlib import Path

from vgs.log import get_logger

log = get_logger(__name__)


@contextlib.contextmanager
def exclusive(lock_file: str | Path, what: str = "", announce: bool = True):
    """Hold the lock for the block; `announce`: say so when another process makes us wait."""
    path = Path(lock_file)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a+") as f:
        t0, told = time.time(), not announce
        while True:
            try:
                fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if not told and time.time() - t0 > 2:  # a brief wait (a reader opening stores) is not news
                    log.info(f"waiting for another process that is preparing {what or path.stem} ...")
                    told = True
                time.sleep(0.2)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def process_alive(pid: int) -> bool:
    """Whether process `pid` exists on this machine (a live process of another user counts): the files
    named by a process id (half-written shards, scratch folders) of a gone process are left-overs."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
