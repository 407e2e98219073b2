"""Run folders and checkpoint files: written atomically, read back with weights_only (a
checkpoint on shared storage cannot run code in the loader)."""

from __future__ import annotations

import time
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import torch

from vgs.config import (
    Config,
    ConfigError,
    apply_overrides,
    config_from_cli,
    differing_keys,
    from_dict,
    make_folder,
    parse_cli_overrides,
    to_dict,
    vgs_home,
)
from vgs.log import get_logger

log = get_logger(__name__)
BEST, LAST = "best.pt", "last.pt"


def claim_folder(base: Path, stamp: str) -> Path:
    """base/<stamp>, or <stamp>-2, -3, ... if taken, made with mkdir so that two processes
    starting in the same second never get the same folder."""
    base.mkdir(parents=True, exist_ok=True)
    for n in range(1, 10_000):
        folder = base / (stamp if n == 1 else f"{stamp}-{n}")
        try:
            folder.mkdir()
            return folder
        except FileExistsError:
            continue
    raise ConfigError(f"{base}: cannot make a new folder named {stamp}")


def new_run_dir() -> Path:
    """<VGS_HOME>/runs/<time>, claimed by creating it: two runs started in the same second (vgs
    calibrate trains two at once) get <time> and <time>-2 instead of one folder, where one had
    loaded the other's best.pt."""
    return claim_folder(vgs_home() / "runs", time.strftime("%Y%m%d-%H%M%S"))


def make_run_dir(out_dir: str | Path | None) -> Path:
    """out_dir, made where missing, or a new <VGS_HOME>/runs/<time>: made before any corpus work,
    so a folder that cannot be made is named at once."""
    if out_dir:
        return make_folder(Path(out_dir), f"the run's folder {out_dir}")
    return new_run_dir()  # under VGS_HOME, which vgs_home() has made


def resumable(out_dir: str | Path | None) -> Path:
    """The run folder `python -m vgs.train --resume` continues.  fit() starts afresh from a folder
    without last.pt (as a trial's first attempt must); asked to resume, the command would have
    trained from scratch without a word."""
    if not out_dir:
        raise ConfigError("--resume: it needs --out, the run's folder (it holds last.pt after the first epoch)")
    if not (Path(out_dir) / LAST).is_file():
        raise ConfigError(
            f"--resume: {Path(out_dir) / LAST} does not exist (a run's folder holds it after its first epoch)"
        )
    if not zipfile.is_zipfile(Path(out_dir) / LAST):  # torch.save's format: a cut file has no directory
        raise CheckpointError(
            f"--resume: {Path(out_dir) / LAST} is truncated or empty ({(Path(out_dir) / LAST).stat().st_size} "
            f"bytes); it cannot be resumed. Train into a new --out (its best.pt, if readable, is kept)"
        )
    return Path(out_dir)


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


class CheckpointError(ConfigError):
    """A checkpoint file that cannot be read (truncated, empty, or not a checkpoint); names it."""


def load(path: Path, device: torch.device | str = "cpu") -> dict:
    """A checkpoint's contents, without running pickled code; a CheckpointError naming the file if it
    cannot be read (torch says only "EOFError" or a zip error, without the path)."""
    try:
        state = torch.load(path, map_location=device, weights_only=True)
    except FileNotFoundError:
        raise
    except Exception as e:  # noqa: BLE001 - torch raises many types for a damaged file
        size = Path(path).stat().st_size if Path(path).exists() else 0
        raise CheckpointError(
            f"{path} cannot be read as a checkpoint ({size} bytes; {type(e).__name__}: {str(e)[:200]}): "
            f"it is truncated, empty or not a vgs checkpoint"
        ) from e
    if not isinstance(state, dict):
        raise CheckpointError(f"{path} is not a vgs checkpoint (it holds a {type(state).__name__})")
    return state


def last_state(folder: str | Path | None, device: torch.device | str = "cpu") -> dict | None:
    """The training state a run resumes from (folder/last.pt), or None to start at epoch 1: there is
    none yet, or it cannot be read (a trial's restart would only fail on the same file again)."""
    if not folder or not (Path(folder) / LAST).exists():
        return None
    try:
        return load(Path(folder) / LAST, device)
    except CheckpointError as e:
        log.warning(f"warning: {e}; this run starts again from epoch 1")
        return None


def restore_optimizers(opts: dict[str, torch.optim.Optimizer], state: dict, path: Path) -> dict:
    """Load a last.pt's optimizer states into `opts` (by optimizer key) and return its scheduler
    states.  A run saved before each objective had its own optimizer holds one "optimizer": it
    resumes a run with one optimizer; a run with several would start their moments from nothing,
    so it is refused, naming the way on."""
    if "optimizers" in state:
        optimizers, schedulers = state["optimizers"], state["schedulers"]
    elif len(opts) == 1:
        key = next(iter(opts))
        optimizers, schedulers = {key: state["optimizer"]}, {key: state["scheduler"]}
    else:
        raise ConfigError(
            f"{path} was saved with one optimizer for every objective; resume it with "
            f"train.objective_optimizers=false (this run would use one per objective: {', '.join(opts)})"
        )
    for key, opt_state in optimizers.items():
        opts[key].load_state_dict(opt_state)
    return schedulers


def save_best(path: Path, model, cfg, name: str, epoch: int, val: dict, vocab, max_chars) -> None:
    """best.pt: the weights of the best epoch with what loading them needs (config, vocabulary)."""
    save(
        path,
        {
            "model": model.state_dict(),
            "config": to_dict(cfg),
            "model_name": name,
            "epoch": epoch,
            "metrics": val,
            "vocab": vocab.chars if vocab else None,
            "max_chars": max_chars,
        },
    )


def save_last(path: Path, model, opts: dict, scheds: dict, epoch: int, best: dict, cfg, seconds: float) -> None:
    """last.pt: the whole training state after an epoch, for resuming."""
    save(
        path,
        {
            "model": model.state_dict(),
            "optimizers": {k: o.state_dict() for k, o in opts.items()},
            "schedulers": {k: s.state_dict() for k, s in scheds.items()},
            "epoch": epoch,
            "best": best,
            "config": to_dict(cfg),
            "seconds_total": seconds,
        },
    )


def resumed_config(last: Path, base: str | None, items: list[str], data: str | None, skip_bad: bool) -> Config:
    """`python -m vgs.train --resume`: the config the run was started with (saved in last.pt).  A
    command line that asks for another is refused, naming the keys: another model failed on a size
    mismatch, and another corpus, seed or learning rate had continued silently into the same best.pt."""
    saved = from_dict(load(last)["config"])
    if base is None and not items and not data and not skip_bad:
        return saved
    if base:
        requested = config_from_cli(base, items, data, skip_bad)
    else:
        overrides = parse_cli_overrides(items)
        overrides.update({"data.root": data} if data else {})
        overrides.update({"data.skip_bad": "true"} if skip_bad else {})
        requested = apply_overrides(saved, overrides)
    was, now = to_dict(saved), to_dict(requested)
    changed = differing_keys(was, now)
    if changed:
        shown = "; ".join(f"{k}: given {_at(now, k)!r}, saved {_at(was, k)!r}" for k in changed[:6])
        more = f"; {len(changed) - 6} more" if len(changed) > 6 else ""
        raise ConfigError(
            f"--resume continues {last} as it was started, and the command line differs ({shown}{more}). "
            f"Leave those out to resume, or train into a new --out"
        )
    return saved


def _at(tree: Any, dotted: str) -> Any:
    for part in dotted.split("."):
        tree = tree.get(part) if isinstance(tree, dict) else None
    return tree
