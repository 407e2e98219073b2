"""Where Ray results go: a local folder, or a URI that every node of a cluster can reach
(s3://bucket/path, gs://bucket/path, file:///mnt/nfs/path), through pyarrow's filesystems as Ray
itself does.  (The feature store is memory-mapped, so it needs a real shared folder: VGS_HOME on NFS.)"""
from __future__ import annotations

from pathlib import Path

from vgs.config import ConfigError


def is_uri(location: str) -> bool:
    return "://" in location


def normalise(location: str) -> str:
    """A local path made absolute (and created); a URI as given, checked to be reachable."""
    if not is_uri(location):
        path = Path(location).expanduser().resolve()
        path.mkdir(parents=True, exist_ok=True)
        return str(path)
    fs, path = _filesystem(location)
    fs.create_dir(path, recursive=True)
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
        raise ConfigError(f"--storage {location}: cannot open it ({e}); use a folder, s3://, gs:// or file:// URI "
                          f"(S3 needs AWS credentials in the environment, GCS gcloud credentials)") from e


def latest_sweep(location: str, sweep_name: str) -> str | None:
    """Name of the most recent `<sweep_name>_<time>` run under location that Tune can restore."""
    import pyarrow.fs

    fs, root = _filesystem(location)
    infos = fs.get_file_info(pyarrow.fs.FileSelector(root, allow_not_found=True))
    names = sorted(i.base_name for i in infos if i.type == pyarrow.fs.FileType.Directory
                   and i.base_name.startswith(f"{sweep_name}_"))
    for name in reversed(names):
        if fs.get_file_info(f"{root.rstrip('/')}/{name}/tuner.pkl").type == pyarrow.fs.FileType.File:
            return name
    return None


def exists(location: str) -> bool:
    import pyarrow.fs

    fs, path = _filesystem(location)
    return fs.get_file_info(path).type != pyarrow.fs.FileType.NotFound


def write_text(location: str, text: str) -> None:
    fs, path = _filesystem(location)
    with fs.open_output_stream(path) as f:
        f.write(text.encode())
