"""What produced a figure: the package versions, a hash of the whole Python environment, the CPU
(and torch's kernel level on it), the GPU, and the checkout's commit.  Recorded in every sweep's
parent run and summary, printed by `python -m vgs.environment` (`vgs env`) for docs/results.md."""

from __future__ import annotations

import hashlib
import json
import os
import platform
import subprocess
import sys
import sysconfig
from importlib import metadata
from pathlib import Path
from typing import Any

# the libraries whose versions can change a digit of a table (kernels, RNG streams, resolution)
KEY_PACKAGES = ("torch", "torchaudio", "torchvision", "ray", "optuna", "mlflow", "numpy", "scipy")
# not part of the environment's identity: vgs itself (the commit says which), pip (setup upgrades it)
UNHASHED = {"vgs", "pip"}
CHECKOUT = Path(__file__).resolve().parents[1]


def installed() -> dict[str, str]:
    """name -> version of every distribution installed in this interpreter's site-packages (names
    normalised).  Only there: sys.path changes with what is imported (Ray adds its vendored
    thirdparty_files, the current folder may hold an .egg-info), and the hash must not."""
    found: dict[str, str] = {}
    paths = list(dict.fromkeys(sysconfig.get_paths()[k] for k in ("purelib", "platlib")))
    for dist in metadata.distributions(path=paths):
        name = (dist.metadata["Name"] or "").lower().replace("_", "-")
        if name:
            found.setdefault(name, dist.version)  # the first on sys.path is the one imported
    return found


def environment_hash(packages: dict[str, str] | None = None) -> str:
    """16 hex digits of the sha256 of the sorted `name==version` lines: two environments with the
    same hash hold the same versions of every package (scripts/setup.sh installs requirements.lock)."""
    packages = installed() if packages is None else packages
    lines = sorted(f"{n}=={v}" for n, v in packages.items() if n not in UNHASHED)
    return hashlib.sha256("\n".join(lines).encode()).hexdigest()[:16]


def cpu_model() -> str:
    """The CPU's model name (/proc/cpuinfo on Linux), else what the platform says."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def git_commit(root: Path = CHECKOUT) -> dict[str, str]:
    """{"commit", "branch", "dirty"} of the checkout vgs runs from; {} for an installed package or a
    checkout of something else around it."""

    def git(*args: str) -> str:
        return subprocess.run(
            ["git", "-C", str(root), *args], capture_output=True, text=True, timeout=10, check=True
        ).stdout.strip()

    try:
        if git("rev-parse", "--show-toplevel") != str(root):
            return {}
        return {
            "commit": git("rev-parse", "HEAD"),
            "branch": git("rev-parse", "--abbrev-ref", "HEAD"),
            "dirty": str(bool(git("status", "--porcelain", "--untracked-files=no"))).lower(),
        }
    except (OSError, subprocess.SubprocessError):
        return {}


def environment_record() -> dict[str, Any]:
    """Everything above, as plain data (summary.json's "environment")."""
    import torch

    packages = installed()
    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else None
    return {
        "python": platform.python_version(),
        "platform": f"{sys.platform}-{platform.machine()}",
        "versions": {name: packages.get(name, "not installed") for name in KEY_PACKAGES},
        "env_hash": environment_hash(packages),
        "cpu": cpu_model(),
        "cpu_count": os.cpu_count(),
        "torch_cpu_capability": torch.backends.cpu.get_cpu_capability(),
        "gpu": gpu,
        **{f"git_{k}": v for k, v in git_commit().items()},
    }


def environment_tags(record: dict[str, Any]) -> dict[str, str]:
    """The record as MLflow tags (vgs.env.*), searchable in the runs table."""
    tags = {f"vgs.env.{k}": str(v) for k, v in record.items() if k != "versions"}
    tags.update({f"vgs.env.{name}": version for name, version in record["versions"].items()})
    return tags


def describe(record: dict[str, Any]) -> str:
    """One line for docs/results.md: 'env 1a2b... (torch 2.11.0, ...), AMD EPYC ... (AVX2), commit abc1234'."""
    versions = ", ".join(f"{k} {v}" for k, v in record["versions"].items())
    gpu = f", GPU {record['gpu']}" if record.get("gpu") else ""
    commit = record.get("git_commit", "")[:7] + (" (with local changes)" if record.get("git_dirty") == "true" else "")
    return (
        f"env {record['env_hash']} ({versions}; Python {record['python']}), {record['cpu']} "
        f"({record['cpu_count']} cores, torch CPU kernels {record['torch_cpu_capability']}){gpu}"
        + (f", commit {commit}" if commit else "")
    )


def main(argv: list[str] | None = None) -> int:
    record = environment_record()
    if argv and "--json" in argv:
        print(json.dumps(record, indent=1))
    else:
        print(describe(record))
    return 0


if __name__ == "__main__":
    sys.exit(main())
