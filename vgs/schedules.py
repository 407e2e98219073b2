"""Learning-rate schedules and the phases of a run (each phase anneals on its own)."""

from __future__ import annotations

import math
from collections.abc import Callable

import torch

from vgs.config import ConfigError, TrainConfig


def stable_then_cosine(step: int, total: int, decay_fraction: float, floor: float) -> float:
    """LR factor of the "wsd" schedule: 1 for the first (1 - decay_fraction) of the steps, then a
    cosine down to `floor` at the last step.  A short run keeps its full rate for most of its
    steps (ASHA's rungs compare configurations at the same rate) and ends annealed (less seed noise)."""
    start = round(total * (1 - decay_fraction))
    if step < start or total <= start:
        return 1.0
    progress = min(1.0, (step - start) / max(1, total - start))
    return floor + (1 - floor) * 0.5 * (1 + math.cos(math.pi * progress))


def make_scheduler(opt: torch.optim.Optimizer, cfg: TrainConfig, steps_per_epoch: int):
    """Per-batch LR schedules: CALR, CALWR (T0, Tmult in epochs), cyclic (triangular), constant,
    wsd (constant, then a cosine over the last train.decay_fraction of the steps)."""
    s = torch.optim.lr_scheduler
    steps = max(1, steps_per_epoch)
    if cfg.scheduler == "wsd":
        total, floor = cfg.epochs * steps, cfg.min_lr / cfg.lr
        return s.LambdaLR(opt, lambda step: stable_then_cosine(step, total, cfg.decay_fraction, floor))
    if cfg.scheduler == "calr":
        return s.CosineAnnealingLR(opt, T_max=cfg.epochs * steps, eta_min=cfg.min_lr)
    if cfg.scheduler == "calwr":
        return s.CosineAnnealingWarmRestarts(opt, T_0=cfg.calwr_t0 * steps, T_mult=cfg.calwr_t_mult, eta_min=cfg.min_lr)
    if cfg.scheduler == "cyclic":
        return s.CyclicLR(
            opt,
            base_lr=cfg.min_lr,
            max_lr=cfg.lr,
            step_size_up=max(1, round(cfg.cyclic_step_epochs * steps)),
            mode="triangular",
            cycle_momentum=False,
        )
    if cfg.scheduler == "constant":
        return s.LambdaLR(opt, lambda _: 1.0)
    raise ConfigError(f"train.scheduler must be one of calr, calwr, cyclic, constant, wsd; got '{cfg.scheduler}'")


def phase_schedulers(opts: dict[str, torch.optim.Optimizer], steps: dict[str, int], cfg: TrainConfig) -> dict:
    """A phase's schedule for each optimizer (one per objective with train.objective_optimizers), from
    cfg.lr over cfg.epochs of that optimizer's own steps per epoch."""
    out = {}
    for key, opt in opts.items():
        for group in opt.param_groups:  # torch's cosine schedules continue from the current rate ...
            group["lr"] = group["initial_lr"] = cfg.lr  # ... and every schedule scales the first one's initial_lr
        out[key] = make_scheduler(opt, cfg, steps[key])
    return out


def training_phases(objectives_at: Callable[[int], tuple[str, ...]], epochs: int) -> list[tuple[int, int]]:
    """(first, last) epoch of each run of epochs that train the same objectives: one phase for
    most families, two for pipe-seq (ASR/SLT, then text-image).  Each phase has its own LR schedule."""
    phases: list[tuple[int, int]] = []
    for epoch in range(1, epochs + 1):
        if phases and objectives_at(epoch) == objectives_at(phases[-1][0]):
            phases[-1] = (phases[-1][0], epoch)
        else:
            phases.append((epoch, epoch))
    return phases


def with_restart(phases: list[tuple[int, int]], restart_epochs: int) -> list[tuple[int, int]]:
    """The phases with the last `restart_epochs` epochs split off as a phase of their own (the
    warm second run, train.restart_epochs)."""
    if restart_epochs <= 0:
        return phases
    first_restart = phases[-1][1] - restart_epochs + 1
    out = []
    for first, last in phases:
        if first < first_restart <= last:
            out += [(first, first_restart - 1), (first_restart, last)]
        else:
            out.append((first, last))
    return out


def phase_of(phases: list[tuple[int, int]], epoch: int) -> tuple[int, int]:
    return next((first, last) for first, last in phases if first <= epoch <= last)


def restore_schedulers(scheds: dict, saved: dict, opts: dict[str, torch.optim.Optimizer]) -> None:
    """A resumed phase's schedulers where they were, and each optimizer at the rate it had (a
    scheduler's state does not set the rate itself)."""
    for key, sched in scheds.items():
        sched.load_state_dict(saved[key])
        for group, lr in zip(opts[key].param_groups, sched.get_last_lr()):
            group["lr"] = lr
