"""Run folders and checkpoint files: written atomically, read back with weights_only (a
checkpoint on shared storage cannot run code in the loader)."""
from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import torch

from vgs.config import vgs_home

BEST, LAST = "best.pt", "last.pt"


def new_run_dir() -> Path:
    """<VGS_HOME>/runs/<time>, claimed by creating it: two runs started in the same second (vgs
    calibrate trains two at once) get <time> and <time>-2 instead of one folder, where one had
    loaded the other's best.pt."""
    from vgs.storage import claim_folder

    return claim_folder(vgs_home() / "runs", time.strftime("%Y%m%d-%H%M%S"))


def _plain(x):
    """Numpy scalars -> Python numbers, recursively: torch.load(weights_only=True) takes only
    tensors and plain Python data."""
    if isinstance(x, dict):
        return {k: _plain(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return type(x)(_plain(v) for v in x)
    if isinstance(x, np.generic):
        return x.item()
    return x


def save(path: Path, obj: dict) -> None:
    tmp = path.with_name(path.name + ".tmp")
    torch.save(_plain(obj), tmp)
    tmp.replace(path)  # a crash mid-write never leaves a truncated checkpoint


def load(path: Path, device: torch.device | str = "cpu") -> dict:
    return torch.load(path, map_location=device, weights_only=True)
