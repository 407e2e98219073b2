"""One training loop for every model family.  Never imports Ray: `sweep.py` wraps `fit`.

    python -m vgs.train [--base cpu-small] [--out DIR] [key=value ...]

trains one configuration and prints a line per epoch.
"""
from __future__ import annotations

import argparse
import json
import math
import random
import sys
import time
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from vgs.config import Config, ConfigError, TrainConfig, apply_overrides, base_config, check_consistent, from_dict, \
    parse_cli_overrides, to_dict, vgs_home
from vgs.data.batching import PairSplit
from vgs.data.prepare import Prepared, prepare, resolve_paths
from vgs.data.records import CorpusError
from vgs.metrics import retrieval
from vgs.models.registry import build_model, model_name

# report(metrics, checkpoint_dir): called once per epoch; checkpoint_dir holds last.pt and best.pt
Report = Callable[[dict, Path], None]
SELECTION_METRIC = "val_s2i_r10"


def pick_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise ConfigError("train.device is 'cuda' but no GPU is visible")
    return torch.device(name)


def make_scheduler(opt: torch.optim.Optimizer, cfg: TrainConfig, steps_per_epoch: int):
    """Per-batch LR schedules: CALR, CALWR (T0, Tmult in epochs), cyclic (triangular), constant."""
    s = torch.optim.lr_scheduler
    steps = max(1, steps_per_epoch)
    if cfg.scheduler == "calr":
        return s.CosineAnnealingLR(opt, T_max=cfg.epochs * steps, eta_min=cfg.min_lr)
    if cfg.scheduler == "calwr":
        return s.CosineAnnealingWarmRestarts(opt, T_0=cfg.calwr_t0 * steps, T_mult=cfg.calwr_t_mult, eta_min=cfg.min_lr)
    if cfg.scheduler == "cyclic":
        return s.CyclicLR(opt, base_lr=cfg.min_lr, max_lr=cfg.lr, step_size_up=max(1, round(cfg.cyclic_step_epochs * steps)),
                          mode="triangular", cycle_momentum=False)
    if cfg.scheduler == "constant":
        return s.LambdaLR(opt, lambda _: 1.0)
    raise ConfigError(f"train.scheduler must be one of calr, calwr, cyclic, constant; got '{cfg.scheduler}'")


@torch.no_grad()
def embed_split(model, split: PairSplit, cfg: Config, device: torch.device) -> tuple[np.ndarray, np.ndarray]:
    model.eval()
    order = np.argsort(split.lengths, kind="stable")  # similar lengths together: less padding
    bs = cfg.train.eval_batch_size
    speech = np.empty((len(split), cfg.model.latent), np.float32)
    for a in range(0, len(order), bs):
        idx = order[a:a + bs]
        x, lengths = split.speech_batch(idx)
        speech[idx] = model.speech(x.to(device), lengths.to(device)).float().cpu().numpy()
    images = np.empty((len(split.image_names), cfg.model.latent), np.float32)
    for a in range(0, len(images), bs):
        idx = np.arange(a, min(a + bs, len(images)))
        images[idx] = model.image(split.pixels(idx, cfg.data.image_crop).to(device)).float().cpu().numpy()
    return speech, images


def evaluate(model, split: PairSplit, cfg: Config, device: torch.device) -> dict[str, float]:
    speech, images = embed_split(model, split, cfg, device)
    return retrieval(speech, images, split.image_of_caption)


def _seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def fit(cfg: Config, report: Report | None = None, out_dir: str | Path | None = None,
        resume: str | Path | None = None, data: Prepared | None = None, quiet: bool = False) -> dict:
    """Train `cfg`; evaluate on val every epoch; keep the best epoch by val speech->image R@10.

    out_dir receives last.pt (full training state, for resuming) and best.pt (state_dict and
    resolved config).  resume: a folder with a last.pt to continue from.  Returns the final
    summary (best val metrics, and test metrics of the best epoch if train.test_at_end)."""
    cfg = from_dict(to_dict(cfg))  # private copy
    cfg.data = resolve_paths(cfg.data)
    check_consistent(cfg)  # before any corpus or feature work
    torch.set_num_threads(max(1, cfg.train.threads))
    device = pick_device(cfg.train.device)
    data = data or prepare(cfg.data, quiet=quiet)
    train_split, val_split = PairSplit(data, "train"), PairSplit(data, "val")

    _seed_everything(cfg.train.seed)
    try:
        model = build_model(cfg.model, data.speech.dim, data.images.feature_dim).to(device)
    except ValueError as e:
        raise ConfigError(str(e)) from e
    opt = torch.optim.Adam(model.parameters(), lr=cfg.train.lr)
    steps = len(train_split.epoch_batches(np.random.default_rng(0), cfg.train.batch_size, cfg.train.captions_per_image))
    sched = make_scheduler(opt, cfg.train, steps)

    out = Path(out_dir) if out_dir else vgs_home() / "runs" / time.strftime("%Y%m%d-%H%M%S")
    out.mkdir(parents=True, exist_ok=True)
    start_epoch, best = 1, {"epoch": 0, SELECTION_METRIC: -1.0}
    if resume and (Path(resume) / "last.pt").exists():
        state = torch.load(Path(resume) / "last.pt", map_location=device, weights_only=False)
        model.load_state_dict(state["model"])
        opt.load_state_dict(state["optimizer"])
        sched.load_state_dict(state["scheduler"])
        start_epoch, best = state["epoch"] + 1, state["best"]
        if Path(resume).resolve() != out.resolve() and (Path(resume) / "best.pt").exists():
            (out / "best.pt").write_bytes((Path(resume) / "best.pt").read_bytes())

    summary: dict = {}
    name = model_name(cfg.model)
    for epoch in range(start_epoch, cfg.train.epochs + 1):
        t0 = time.time()
        model.train()
        rng = np.random.default_rng([cfg.train.seed, epoch])  # per-epoch stream: resuming replays it exactly
        torch.manual_seed(cfg.train.seed * 100_003 + epoch)
        losses = []
        for idx in train_split.epoch_batches(rng, cfg.train.batch_size, cfg.train.captions_per_image):
            batch = {k: v.to(device) for k, v in
                     train_split.batch(idx, cfg.data.image_crop, rng if cfg.train.augment else None).items()}
            terms = model.objective(batch, cfg.train.margin)
            loss = sum(terms.values())
            if not torch.isfinite(loss):
                raise FloatingPointError(f"loss became {loss.item()} at epoch {epoch}; lower train.lr "
                                         f"(now {cfg.train.lr}) or set train.clip_grad")
            opt.zero_grad(set_to_none=True)
            loss.backward()
            if cfg.train.clip_grad > 0:
                torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.train.clip_grad)
            opt.step()
            sched.step()
            losses.append(loss.item())
        train_seconds = time.time() - t0
        val = {f"val_{k}": v for k, v in evaluate(model, val_split, cfg, device).items()}
        metrics = {"epoch": epoch, "train_loss": float(np.mean(losses)), "lr": opt.param_groups[0]["lr"],
                   "train_seconds": train_seconds, "epoch_seconds": time.time() - t0, **val}
        if val[SELECTION_METRIC] > best[SELECTION_METRIC]:
            best = {"epoch": epoch, **val}
            _save(out / "best.pt", {"model": model.state_dict(), "config": to_dict(cfg), "model_name": name,
                                    "epoch": epoch, "metrics": val})
        metrics.update({f"best_{k}": v for k, v in best.items()})
        if epoch == cfg.train.epochs and cfg.train.test_at_end:
            metrics.update(test_best(out / "best.pt", cfg, data, device))
        _save(out / "last.pt", {"model": model.state_dict(), "optimizer": opt.state_dict(),
                                "scheduler": sched.state_dict(), "epoch": epoch, "best": best, "config": to_dict(cfg)})
        if not quiet:
            print(f"[{name}] epoch {epoch}/{cfg.train.epochs} loss {metrics['train_loss']:.4f} "
                  f"val R@10 s2i {val['val_s2i_r10']:.3f} i2s {val['val_i2s_r10']:.3f} "
                  f"medr {val['val_s2i_medr']:.0f} ({metrics['epoch_seconds']:.1f} s)", file=sys.stderr, flush=True)
        summary = metrics
        if report is not None:
            report(metrics, out)
    return summary


def test_best(best_path: Path, cfg: Config, data: Prepared, device: torch.device) -> dict[str, float]:
    """Test-split retrieval of the best epoch's weights."""
    state = torch.load(best_path, map_location=device, weights_only=False)
    model = build_model(cfg.model, data.speech.dim, data.images.feature_dim).to(device)
    model.load_state_dict(state["model"])
    return {f"test_{k}": v for k, v in evaluate(model, PairSplit(data, "test"), cfg, device).items()}


def _save(path: Path, obj: dict) -> None:
    tmp = path.with_name(path.name + ".tmp")
    torch.save(obj, tmp)
    tmp.replace(path)  # a crash mid-write never leaves a truncated checkpoint


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m vgs.train", description="Train one configuration (no Ray).")
    p.add_argument("overrides", nargs="*", help="dotted overrides, e.g. model.speech.layers=3 train.epochs=10")
    p.add_argument("--base", default="cpu-small", help="named base config: cpu-small, cpu-tiny, paper")
    p.add_argument("--data", default=None, help="corpus folder (Flickr8K Audio layout); default: built-in corpus")
    p.add_argument("--out", default=None, help="checkpoint folder (default: .vgs/runs/<time>)")
    p.add_argument("--resume", action="store_true", help="continue from --out/last.pt")
    p.add_argument("--skip-bad", action="store_true", help="leave out unreadable audio files (with a report)")
    p.add_argument("--json", action="store_true", help="print the final metrics as JSON on stdout")
    a = p.parse_intermixed_args(argv)  # overrides may come before or after options
    try:
        overrides = parse_cli_overrides(a.overrides)
        if a.data:
            overrides["data.root"] = a.data
        if a.skip_bad:
            overrides["data.skip_bad"] = "true"
        cfg = apply_overrides(base_config(a.base), overrides)
        summary = fit(cfg, out_dir=a.out, resume=a.out if a.resume else None)
    except (ConfigError, CorpusError, FileExistsError, FloatingPointError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    if a.json:
        print(json.dumps(summary, indent=1))
    else:
        keys = [k for k in summary if k.startswith(("best_val_", "test_"))]
        print("  ".join(f"{k}={summary[k]:.3f}" if not math.isnan(summary[k]) else f"{k}=nan" for k in keys))
    return 0


if __name__ == "__main__":
    sys.exit(main())
