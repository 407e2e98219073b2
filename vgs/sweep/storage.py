"""Where Ray results go: a local folder, or a URI that every node of a cluster can reach
(s3://bucket/path, gs://bucket/path, file:///mnt/nfs/path), through pyarrow's filesystems as Ray
itself does.  (The feature store is memory-mapped, so it needs a real shared folder: VGS_HOME on NFS.)"""

from __future__ import annotations

import contextlib
import fcntl
import os
import re
import socket
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

from vgs.checkpoint import claim_folder
from vgs.config import ConfigError, make_folder

_SECRET_QUERY = re.compile(
    r"((?:secret_key|access_key|session_token|password|token|access_token|api_key|apikey|key|auth)=)[^&#]*",
    re.IGNORECASE,
)


def redact(location: str) -> str:
    """A URI fit to print or log: a password in user:password@host and secret query values
    (s3://bucket?access_key=...&secret_key=...) become ***."""
    if "://" not in location:
        return location
    bare, user, password = split_credentials(location)
    if user is not None:  # a token as the user name hides whole; a user name stays beside its password
        scheme, rest = bare.split("://", 1)
        bare = f"{scheme}://{'***' if password is None else user + ':***'}@{rest}"
    return _SECRET_QUERY.sub(r"\1***", bare)


def split_credentials(uri: str) -> tuple[str, str | None, str | None]:
    """(the URI without user:password@, user, password).  The credentials end at the last @ before
    the query, so a password may hold @ or / (unencoded, as users paste them)."""
    scheme, sep, rest = uri.partition("://")
    head, q, query = rest.partition("?")
    if not sep or "@" not in head:
        return uri, None, None
    userinfo, _, host = head.rpartition("@")
    user, colon, password = userinfo.partition(":")
    return f"{scheme}://{host}{q}{query}", user, (password if colon else None)


def is_uri(location: str) -> bool:
    return "://" in location


def normalise(location: str) -> str:
    """A local path made absolute (and created); a URI as given, checked to be reachable."""
    if not is_uri(location):
        path = make_folder(Path(location).expanduser().resolve(), f"--storage {location}")
        try:  # a folder is made in it per sweep: try that (root passes os.access even on /proc)
            os.rmdir(tempfile.mkdtemp(prefix=".vgs-write-test-", dir=path))
        except OSError as e:
            raise ConfigError(f"--storage {location}: cannot make a folder in it ({e.strerror or e})") from e
        return str(path)
    fs, path = _filesystem(location)
    try:
        fs.create_dir(path, recursive=True)
    except OSError as e:  # pyarrow's errors of a file system are OSErrors
        raise ConfigError(f"--storage {redact(location)}: cannot make the folder ({e})") from e
    return location.rstrip("/")


def join(location: str, name: str) -> str:
    return f"{location.rstrip('/')}/{name}" if is_uri(location) else str(Path(location) / name)


def _filesystem(location: str):
    """(pyarrow filesystem, path in it) of a folder or a URI."""
    import pyarrow.fs

    if not is_uri(location):
        return pyarrow.fs.LocalFileSystem(), location
    try:
        return pyarrow.fs.FileSystem.from_uri(location)
    except (pyarrow.ArrowInvalid, pyarrow.ArrowNotImplementedError, OSError) as e:
        raise ConfigError(
            f"--storage {location}: cannot open it ({e}); use a folder, s3://, gs:// or file:// URI "
            f"(S3 needs AWS credentials in the environment, GCS gcloud credentials)"
        ) from e


def latest_sweep(location: str, sweep_name: str) -> str | None:
    """Name of the most recent `<sweep_name>_<time>` run under location that Tune can restore."""
    import pyarrow.fs

    fs, root = _filesystem(location)
    infos = fs.get_file_info(pyarrow.fs.FileSelector(root, allow_not_found=True))
    # exactly NAME_<time>[-n]: gru_layers must not pick up gru_layers_grid_<time>
    own = re.compile(re.escape(sweep_name) + r"_\d{8}-\d{6}(-\d+)?")
    names = sorted(
        (i.base_name for i in infos if i.type == pyarrow.fs.FileType.Directory and own.fullmatch(i.base_name)),
        key=lambda n: _time_order(n[len(sweep_name) + 1 :]),
    )
    for name in reversed(names):
        if fs.get_file_info(f"{root.rstrip('/')}/{name}/tuner.pkl").type == pyarrow.fs.FileType.File:
            return name
    return None


def _time_order(suffix: str) -> tuple[str, int]:
    """'20261201-212450-2' -> ('20261201-212450', 2): the second sweep of that second sorts after."""
    return suffix[:15], int(suffix[16:] or 1)


def new_sweep_name(location: str, sweep_name: str) -> str:
    """NAME_<YYYYmmdd-HHMMSS>, claimed by creating its folder: two sweeps started in the same
    second get NAME_<time> and NAME_<time>-2 (they had shared one folder and one MLflow parent).
    A URI's folder cannot be claimed atomically; its name gets the time alone."""
    stamp = f"{sweep_name}_{time.strftime('%Y%m%d-%H%M%S')}"
    if is_uri(location):
        return stamp
    return claim_folder(Path(location), stamp).name


def exists(location: str) -> bool:
    import pyarrow.fs

    fs, path = _filesystem(location)
    return fs.get_file_info(path).type != pyarrow.fs.FileType.NotFound


def write_text(location: str, text: str) -> None:
    fs, path = _filesystem(location)
    fs.create_dir(path.rsplit("/", 1)[0], recursive=True)  # a file:// folder must exist; object stores ignore it
    with fs.open_output_stream(path) as f:
        f.write(text.encode())


def read_text(location: str) -> str:
    fs, path = _filesystem(location)
    with fs.open_input_stream(path) as f:
        return f.read().decode()


DRIVER_LOCK = "driver.lock"  # in a sweep's folder: held by the one driver that runs it


@contextlib.contextmanager
def driver_lock(sweep_dir: str) -> Iterator[None]:
    """Hold the sweep folder for this driver: a second driver (two --resume at once) is refused,
    naming the process that holds it.  An flock, so a driver that dies releases it with its
    process.  A URI (s3://, gs://) cannot be locked; there the user keeps to one driver."""
    if is_uri(sweep_dir):
        yield
        return
    path = Path(sweep_dir) / DRIVER_LOCK
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a+") as f:
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            f.seek(0)
            holder = f.read().strip() or "another process"
            raise ConfigError(
                f"{sweep_dir} is being run by {holder}; one driver runs a sweep at a time. Wait for it to "
                f"finish (or stop it: Ctrl-C keeps its state), then --resume"
            ) from None
        f.seek(0)
        f.truncate()
        f.write(f"process {os.getpid()} on {socket.gethostname()} (since {time.strftime('%Y-%m-%d %H:%M:%S')})\n")
        f.flush()
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)
