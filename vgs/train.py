"""One training loop for every model family.  Never imports Ray: vgs.sweep.trial wraps `fit`.

    python -m vgs.train [--base cpu-small] [--out DIR] [key=value ...]

trains one configuration and prints a line per epoch.  What is family-specific (objectives, data,
evaluation, phases) comes from the configuration's Task (vgs.tasks); evaluation is vgs.evaluate.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import random
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from vgs import checkpoint, distributed
from vgs import metric_names as names
from vgs.checkpoint import BEST, LAST, load, make_run_dir, restore_optimizers, resumable, save_best, save_last
from vgs.cli_options import add_base, add_data, add_overrides, add_skip_bad
from vgs.config import Config, ConfigError, from_dict, to_dict
from vgs.costs import encoding_speed, parameter_counts
from vgs.data.prepare import Prepared, resolve_paths
from vgs.data.records import CorpusError
from vgs.device import TrialOutOfMemory, out_of_memory, pick_device, training_precision, tune_for_device
from vgs.evaluate import evaluate, final_scores, logged_scores
from vgs.log import get_logger, report_error
from vgs.losses import Loss
from vgs.schedules import phase_of, phase_schedulers, restore_schedulers, training_phases, with_restart
from vgs.tasks import OBJECTIVES, Run, Task, task_of
from vgs.tasks.factory import build_model, check_config, cli_config, model_name
from vgs.training_data import epoch_plan, training_data

log = get_logger(__name__)
# report(metrics, checkpoint_dir): called once per epoch; checkpoint_dir holds last.pt and best.pt
Report = Callable[[dict, Path], None]


def fit(
    cfg: Config,
    report: Report | None = None,
    out_dir: str | Path | None = None,
    resume: str | Path | None = None,
    data: Prepared | None = None,
) -> dict:
    """Train `cfg`; evaluate on val every epoch; keep the best epoch by the family's selection
    metric (val R@10 of its queries -> images; WER for ASR, BLEU for SLT).

    out_dir receives last.pt (full training state, for resuming) and best.pt (state_dict and
    resolved config).  resume: a folder with a last.pt to continue from.  Returns the final
    summary (best val metrics, and test metrics of the best epoch if train.test_at_end).
    Running out of GPU (or CPU) memory raises TrialOutOfMemory naming the configuration."""
    try:
        return Training(cfg, out_dir, data).run(report, resume)
    except RuntimeError as e:  # torch.OutOfMemoryError (CUDA) is a RuntimeError too
        oom = out_of_memory(e, cfg, model_name(cfg.model))
        if oom is None:
            raise
        raise oom from None


def _seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


class Training:
    """One run of `fit`: the data, the model, its optimiser and schedules, and the epoch loop."""

    def __init__(self, cfg: Config, out_dir: str | Path | None, data: Prepared | None):
        cfg = from_dict(to_dict(cfg))  # private copy
        cfg.data = resolve_paths(cfg.data)
        check_config(cfg)  # before any corpus or feature work
        self.out = make_run_dir(out_dir)
        self.cfg, self.lead = cfg, distributed.rank() == 0  # the lead prints and writes the resumable last.pt
        torch.set_num_threads(max(1, cfg.train.threads))
        self.device = pick_device(cfg.train.device)
        self.data = training_data(cfg, data)
        self.task: Task = task_of(cfg.model)
        _seed_everything(cfg.train.seed)
        try:
            self.model = self.new_model()
        except ValueError as e:
            raise ConfigError(str(e)) from e
        self.metric, self.mode = self.task.selection(cfg.model)
        tune_for_device(self.model, self.device)
        self.precision = training_precision(cfg.train.amp, self.device)
        self.stepper = distributed.data_parallel(self.model, self.device, len(self.task.objectives(cfg.model)) > 1)
        self.loss = Loss.of(cfg.train)
        # one Adam per objective (train.objective_optimizers), or one for all of them ("all")
        self.opts = {
            key: torch.optim.Adam(self.model.parameters(), lr=cfg.train.lr)
            for key in dict.fromkeys(map(self.optimizer_key, self.task.objectives(cfg.model)))
        }
        t = cfg.train
        self.restart_at = t.epochs - t.restart_epochs + 1 if t.restart_epochs else None
        self.state = Run(self.model, cfg, self.device, self.data.vocab, self.data.splits, self.out)
        self.plan_phases()

    def plan_phases(self) -> None:
        t = self.cfg.train
        self.phases = with_restart(training_phases(self.objectives_at, t.epochs), t.restart_epochs)

    def new_model(self) -> torch.nn.Module:
        """The configuration's network at its initialisation (after the run's seed)."""
        d = self.data
        return build_model(
            self.cfg.model,
            d.data.speech.dim,
            d.data.images.feature_dim,
            len(d.vocab) if d.vocab else 0,
            self.cfg.train.epochs,
            d.max_chars,
        ).to(self.device)

    def optimizer_key(self, objective: str) -> str:
        return objective if self.cfg.train.objective_optimizers else "all"

    def objectives_at(self, epoch: int) -> tuple[str, ...]:
        return self.task.objectives_at(self.cfg.model, self.cfg.train.epochs, epoch, self.state)

    def plan(self, epoch: int, rng: np.random.Generator) -> list[tuple[str, np.ndarray]]:
        return epoch_plan(self.objectives_at(epoch), self.task.epoch_rule, self.state.splits, self.cfg, epoch, rng)

    def schedulers_for_phase(self, epoch: int) -> dict:
        """The LR schedules (one per optimizer, over its own steps) of the phase starting at `epoch`."""
        first, last = phase_of(self.phases, epoch)
        plan = self.plan(first, np.random.default_rng(0))
        lr = self.cfg.train.lr * (
            self.cfg.train.restart_lr_factor if self.restart_at and first >= self.restart_at else 1.0
        )
        steps = {key: sum(self.optimizer_key(objective) == key for objective, _ in plan) for key in self.opts}
        return phase_schedulers(self.opts, steps, dataclasses.replace(self.cfg.train, epochs=last - first + 1, lr=lr))

    def resume(self, folder: str | Path | None) -> tuple[int, dict, tuple | None, float]:
        """(first epoch, best so far, (epoch, scheduler state) saved, seconds so far)."""
        best = {"epoch": 0, self.metric: -math.inf if self.mode == "max" else math.inf}
        state = checkpoint.last_state(folder, self.device)
        if state is None:
            return 1, best, None, 0.0
        self.model.load_state_dict(state["model"])
        schedulers = restore_optimizers(self.opts, state, Path(folder) / LAST)
        if Path(folder).resolve() != self.out.resolve():
            for name in (BEST,) + self.task.run_files:
                if (Path(folder) / name).exists():
                    (self.out / name).write_bytes((Path(folder) / name).read_bytes())
        return state["epoch"] + 1, state["best"], (state["epoch"], schedulers), state.get("seconds_total", 0.0)

    def train_epoch(self, epoch: int, scheds: dict) -> dict[str, list[float]]:
        """One epoch's steps; each objective's loss per step."""
        cfg, model = self.cfg, self.model
        model.train()
        rng = np.random.default_rng([cfg.train.seed, epoch])  # per-epoch stream: resuming replays it exactly
        torch.manual_seed(cfg.train.seed * 100_003 + epoch)
        losses: dict[str, list[float]] = {}
        for objective, idx in self.plan(epoch, rng):
            if len(idx) < distributed.world():  # every rank needs a row (same decision on all ranks)
                continue
            needs = OBJECTIVES[objective]
            batch = self.state.splits[objective].batch(
                distributed.shard(idx),
                cfg.data.image_crop,
                rng if cfg.train.augment else None,
                text=needs.text,
                images=needs.images,
            )
            with self.precision:
                terms = self.stepper({k: v.to(self.device) for k, v in batch.items()}, objective, self.loss)
            loss = sum(terms.values())
            if not torch.isfinite(loss):
                raise FloatingPointError(
                    f"{objective} loss became {loss.item()} at epoch {epoch}; lower train.lr "
                    f"(now {cfg.train.lr}) or set train.clip_grad"
                )
            key = self.optimizer_key(objective)
            self.opts[key].zero_grad(set_to_none=True)  # every optimizer holds every parameter
            loss.backward()
            if cfg.train.clip_grad > 0:
                torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.train.clip_grad)
            self.opts[key].step()
            scheds[key].step()
            for k, v in terms.items():
                losses.setdefault(k, []).append(v.item())
        return losses

    def run(self, report: Report | None, resume: str | Path | None) -> dict:
        cfg, d = self.cfg, self.data
        start_epoch, best, saved_schedule, seconds_total = self.resume(resume)
        self.plan_phases()  # a resumed run's phases as they were (a phase may have ended early)
        summary: dict = {}
        scheds = None  # created at each phase's first epoch
        for epoch in range(start_epoch, cfg.train.epochs + 1):
            t0 = time.time()
            self.task.before_epoch(self.state, epoch)
            if epoch == self.restart_at:  # the warm second run: from the best epoch so far, a fresh optimizer
                self.model.load_state_dict(load(self.out / BEST, self.device)["model"])
                for opt in self.opts.values():
                    opt.state.clear()
            if scheds is None or phase_of(self.phases, epoch)[0] == epoch:
                scheds = self.schedulers_for_phase(epoch)  # a new phase anneals on its own
                if saved_schedule and phase_of(self.phases, saved_schedule[0]) == phase_of(self.phases, epoch):
                    restore_schedulers(scheds, saved_schedule[1], self.opts)  # resumed mid-phase: where each was
            losses = self.train_epoch(epoch, scheds)
            train_seconds = distributed.max_over_ranks(time.time() - t0)
            evaluation = evaluate(self.model, d.val, cfg, self.device, d.vocab, beam=cfg.model.asr.val_beam)
            val = evaluation.prefixed(names.VAL)
            tested = logged_scores(self.model, cfg, d, self.device)  # test and a training sample: never select
            # per-rank means of each objective's loss, averaged over ranks (all ranks ran the same batches)
            mean_loss = distributed.mean_over_ranks(
                {
                    "train_loss": float(np.mean([x for v in losses.values() for x in v])),
                    **{f"train_{k}_loss": float(np.mean(v)) for k, v in losses.items()},
                }
            )
            metrics = {
                "epoch": epoch,
                **mean_loss,
                **{f"train_{k}_batches": len(v) for k, v in losses.items()},
                "lr": self.opts[self.optimizer_key(self.objectives_at(epoch)[0])].param_groups[0]["lr"],
                "train_seconds": train_seconds,
                "epoch_seconds": time.time() - t0,
                "workers": distributed.world(),
                **val,
                **tested,
                **parameter_counts(self.model, cfg),
            }
            if self.task.after_validation(self.state, epoch, val):
                self.plan_phases()  # a phase ended early (it converged): the next epoch starts the next one
            if composed := self.task.compose_best(self.state, epoch):  # a family whose parts keep their own best epochs
                val = evaluate(self.model, d.val, cfg, self.device, d.vocab, cfg.model.asr.val_beam).prefixed(names.VAL)
                best, metrics = {self.metric: -math.inf if self.mode == "max" else math.inf}, {**metrics, **composed}
            if (val[self.metric] > best[self.metric]) if self.mode == "max" else (val[self.metric] < best[self.metric]):
                best = {"epoch": epoch, **val}
                # every rank keeps best.pt (its own folder): all of them score the test split at the end
                save_best(self.out / BEST, self.model, cfg, model_name(cfg.model), epoch, val, d.vocab, d.max_chars)
            metrics.update(names.selected_metrics(best, self.metric))
            seconds_total += metrics["epoch_seconds"]
            metrics["seconds_total"] = seconds_total
            if self.lead:
                save_last(self.out / LAST, self.model, self.opts, scheds, epoch, best, cfg, seconds_total)
            if epoch == cfg.train.epochs:
                metrics.update(final_scores(cfg, self.out / BEST, d, self.device, self.task, self.new_model))
                metrics.update(encoding_speed(self.model, cfg, d.data, d.val, self.device))  # the Pareto sets
            self.log_epoch(metrics, evaluation.examples)
            summary = metrics
            if report is not None:
                report(metrics, self.out)
        return summary

    def log_epoch(self, metrics: dict, examples: list[dict[str, str]]) -> None:
        if not self.lead:  # one rank speaks
            return
        shown = " ".join(f"{names.base_name(k)} {metrics[k]:.3f}" for k in names.PROGRESS if k in metrics)
        log.info(
            f"[{model_name(self.cfg.model)}] epoch {metrics['epoch']}/{self.cfg.train.epochs} loss "
            f"{metrics['train_loss']:.4f} val {shown} ({metrics['epoch_seconds']:.1f} s)"
        )
        if examples:
            log.info(f"    ref: {examples[0]['ref']}\n    hyp: {examples[0]['hyp']}")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m vgs.train", description="Train one configuration (no Ray).")
    add_overrides(p, "model.speech.layers=3 train.epochs=10")
    add_base(p, None, why="cpu-small where none is given")
    add_data(p)
    p.add_argument("--out", default=None, help="checkpoint folder (default: .vgs/runs/<time>)")
    p.add_argument("--resume", action="store_true", help="continue from --out/last.pt")
    add_skip_bad(p)
    p.add_argument("--json", action="store_true", help="print the final metrics as JSON on stdout")
    a = p.parse_intermixed_args(argv)  # overrides may come before or after options
    try:
        folder = resumable(a.out) if a.resume else None
        if folder:
            cfg = checkpoint.resumed_config(folder / LAST, a.base, a.overrides, a.data, a.skip_bad)
        else:
            cfg = cli_config(a.base or "cpu-small", a.overrides, a.data, a.skip_bad)
        summary = fit(cfg, out_dir=a.out, resume=folder)
    except (ConfigError, CorpusError, FileExistsError, FloatingPointError, TrialOutOfMemory) as e:
        return report_error(e)
    if a.json:
        print(json.dumps(summary, indent=1))
    else:
        keys = [k for k in summary if k.startswith(("sel_val_", "test_"))]
        print("  ".join(f"{k}={summary[k]:.3f}" if not math.isnan(summary[k]) else f"{k}=nan" for k in keys))
    return 0


if __name__ == "__main__":
    sys.exit(main())
