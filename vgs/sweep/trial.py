"""The Ray Tune trial function: one training process, or a Ray Train run of several DDP workers.

A trial with one worker trains in the Tune trial's own process.  With `workers > 1` the trial
function builds and fits a TorchTrainer (Ray 2.60's Train V2 pattern: `Tuner(TorchTrainer)` no
longer exists); its workers form a torch.distributed group (NCCL on GPUs, gloo on CPUs) and run
the same `train.fit`, which shards every batch and evaluation across them (vgs.distributed).
Rank 0's per-epoch report reaches Tune through TuneReportCallback; its checkpoints go to Ray
Train's storage under a name derived from the trial id, so a restarted or resumed trial picks
up its last epoch.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

from vgs.config import apply_overrides, from_dict, to_dict
from vgs.data.locking import process_alive
from vgs.data.prepare import opened_data
from vgs.log import set_verbosity
from vgs.models.ssl import featuriser_for
from vgs.search_spaces.model import trial_overrides


def remove_orphaned_scratch() -> None:
    """Scratch folders (vgs-...-pid<PID>-...) of trial processes that no longer exist."""
    for folder in Path(tempfile.gettempdir()).glob("vgs-*-pid*-*"):
        pid = folder.name.rpartition("-pid")[2].partition("-")[0]
        if pid.isdigit() and not process_alive(int(pid)):
            shutil.rmtree(folder, ignore_errors=True)


@contextlib.contextmanager
def scratch_folder(prefix: str) -> Iterator[Path]:
    """A local temporary folder for a trial's own last.pt/best.pt, removed when the trial ends.

    Not the Tune trial folder: Ray copies that to the sweep's storage in the background, so the
    checkpoints written there were stored twice (beside the reported checkpoint_NNNNNN) and the copy
    raced their atomic rename ("last.pt.tmp not found" after a resume).  What outlives the trial is
    the checkpoint handed to Ray with each report.  A killed trial cannot remove its folder; the next
    trial on the machine removes those of processes that are gone."""
    remove_orphaned_scratch()
    folder = Path(tempfile.mkdtemp(prefix=f"{prefix}pid{os.getpid()}-"))
    try:
        yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def run_trial(
    config: dict,
    base: dict,
    seeds: list[int],
    variants: dict | None = None,
    workers: int = 1,
    worker_resources: dict | None = None,
    train_storage: str = "",
) -> None:
    """Ray Tune function trainable: base config + this trial's dotted overrides -> train.fit."""
    from ray import tune

    cfg = apply_overrides(from_dict(base), trial_overrides(config, seeds, variants))
    logging.getLogger("ray.train").setLevel(logging.WARNING)  # no line per saved checkpoint
    if workers > 1:
        _fit_with_ray_train(
            to_dict(cfg), workers, worker_resources or {"CPU": 1}, train_storage, tune.get_context().get_trial_id()
        )
        return

    from vgs.train import fit

    def report(metrics: dict, checkpoint_dir: Path) -> None:
        tune.report(
            {**metrics, "node_id": _node_id(), "worker_pid": os.getpid()},
            checkpoint=tune.Checkpoint.from_directory(str(checkpoint_dir)),
        )

    with scratch_folder(f"vgs-trial-{tune.get_context().get_trial_id()}-") as scratch:
        resume = None
        checkpoint = tune.get_checkpoint()
        if checkpoint is not None:  # restored trial: continue from the last reported epoch
            resume = Path(checkpoint.to_directory(str(scratch / "restored")))
        fit(cfg, report=report, out_dir=scratch / "out", resume=resume, data=opened_data(cfg.data, featuriser_for(cfg)))


def _fit_with_ray_train(cfg: dict, workers: int, resources: dict, storage: str, trial_id: str) -> None:
    from ray.train import CheckpointConfig, FailureConfig, RunConfig, ScalingConfig
    from ray.train.torch import TorchTrainer
    from ray.tune.integration.ray_train import TuneReportCallback

    trainer = TorchTrainer(
        train_worker,
        train_loop_config={"config": cfg},
        scaling_config=ScalingConfig(
            num_workers=workers, use_gpu=resources.get("GPU", 0) > 0, resources_per_worker=resources
        ),
        # The same name on every attempt of this trial: Ray Train finds its checkpoints and resumes.
        run_config=RunConfig(
            name=f"train-{trial_id}",
            storage_path=storage,
            callbacks=[TuneReportCallback()],
            failure_config=FailureConfig(max_failures=1),
            checkpoint_config=CheckpointConfig(num_to_keep=1),
        ),
    )
    trainer.fit()


def train_worker(loop_config: dict) -> None:
    """One Ray Train worker: torch.distributed is already set up (gloo or NCCL)."""
    import ray.train
    import torch

    from vgs.train import fit

    logging.getLogger("ray.train").setLevel(logging.WARNING)  # no line per report and checkpoint
    context = ray.train.get_context()
    rank = context.get_world_rank()
    if torch.cuda.is_available():
        import ray.train.torch

        torch.cuda.set_device(ray.train.torch.get_device())
    cfg = from_dict(loop_config["config"])

    def report(metrics: dict, checkpoint_dir: Path) -> None:
        # every rank reports (Ray Train waits for all); rank 0's metrics and checkpoint are kept
        checkpoint = ray.train.Checkpoint.from_directory(str(checkpoint_dir)) if rank == 0 else None
        ray.train.report({**metrics, "node_id": _node_id()}, checkpoint=checkpoint)

    if rank != 0:  # one rank speaks
        set_verbosity(0)
    with scratch_folder(f"vgs-{context.get_experiment_name()}-rank{rank}-") as scratch:
        resume = None
        checkpoint = ray.train.get_checkpoint()
        if checkpoint is not None:
            resume = Path(checkpoint.to_directory(str(scratch / "restored")))
        fit(cfg, report=report, out_dir=scratch / "out", resume=resume)


def _node_id() -> str:
    import ray

    return ray.get_runtime_context().get_node_id()
