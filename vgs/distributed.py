"""Data parallelism inside one trial (torch.distributed; no Ray here: vgs.sweep.trial starts it).

Every rank sees the same *global* batch of caption indices (the same seeded epoch plan) and
trains on its slice `idx[rank::world]`; DDP averages the gradients.  With cross-rank negatives
on, the contrastive loss is computed over the gathered global batch, so W workers with global
batch B take the same step as one worker with batch B (tested).  Evaluation is sharded too:
each rank embeds or decodes its slice and the results are gathered in the original order.
With no process group (one worker) every helper is the identity.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.distributed as dist


def world() -> int:
    return dist.get_world_size() if dist.is_available() and dist.is_initialized() else 1


def rank() -> int:
    return dist.get_rank() if world() > 1 else 0


def shard(items: np.ndarray) -> np.ndarray:
    """This rank's part of a global array of indices: every world()-th item."""
    return items[rank() :: world()]


def unshard(parts: list, n: int) -> list:
    """Inverse of shard(): per-rank lists (rank r holds items r, r+W, ...) -> the n items in order."""
    out: list = [None] * n
    for r, part in enumerate(parts):
        out[r :: len(parts)] = part
    return out


def gather_objects(local: list, n: int) -> list:
    """Every rank's shard of a list of Python objects (e.g. decoded strings), back in global order."""
    if world() == 1:
        return list(local)
    parts: list = [None] * world()
    dist.all_gather_object(parts, list(local))
    return unshard(parts, n)


def gather_rows(local: np.ndarray, n: int) -> np.ndarray:
    """Every rank's shard of an array's rows, back in global order (n rows in all)."""
    if world() == 1:
        return local
    parts = gather_objects([local], world())  # one array per rank, pickled: eval-sized, not per step
    out = np.empty((n, *local.shape[1:]), local.dtype)
    for r, part in enumerate(parts):
        out[r :: world()] = part
    return out


class _GatherWithGrad(torch.autograd.Function):
    """All-gather of variable-length row blocks whose backward sends each rank the *sum* over ranks
    of the gradient of its rows (every rank computes the same global loss), so that DDP's average
    of the per-rank gradients equals the gradient of one worker on the whole batch.  Uses only
    all_gather and all_reduce, which gloo and NCCL both have."""

    @staticmethod
    def forward(ctx, x: torch.Tensor, sizes: tuple[int, ...]) -> torch.Tensor:
        ctx.sizes, ctx.rank = sizes, dist.get_rank()
        longest = max(sizes)
        padded = x.new_zeros((longest, *x.shape[1:]))
        padded[: x.size(0)] = x
        parts = [torch.empty_like(padded) for _ in sizes]
        dist.all_gather(parts, padded.contiguous())
        return torch.cat([p[:s] for p, s in zip(parts, sizes)])

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        grad = grad.contiguous().clone()
        dist.all_reduce(grad)
        start = sum(ctx.sizes[: ctx.rank])
        return grad[start : start + ctx.sizes[ctx.rank]], None


def gather_with_grad(x: torch.Tensor) -> torch.Tensor:
    """Rows of every rank's x, rank 0's first (shard order; a contrastive loss does not care),
    differentiable with respect to this rank's rows."""
    if world() == 1:
        return x
    n = torch.tensor([x.size(0)], device=x.device)
    sizes = [torch.zeros_like(n) for _ in range(world())]
    dist.all_gather(sizes, n)
    return _GatherWithGrad.apply(x, tuple(int(s) for s in sizes))


def _reduce_device() -> torch.device:
    """NCCL reduces GPU tensors only; gloo CPU ones."""
    if dist.get_backend() == "nccl":
        return torch.device("cuda", torch.cuda.current_device())
    return torch.device("cpu")


def mean_over_ranks(values: dict[str, float]) -> dict[str, float]:
    """Each key averaged over the ranks (every rank passes the same keys in the same order)."""
    if world() == 1 or not values:
        return values
    t = torch.tensor(list(values.values()), dtype=torch.float64, device=_reduce_device())
    dist.all_reduce(t)
    return {k: float(v) / world() for k, v in zip(values, t.tolist())}


def max_over_ranks(value: float) -> float:
    if world() == 1:
        return value
    t = torch.tensor([value], dtype=torch.float64, device=_reduce_device())
    dist.all_reduce(t, op=dist.ReduceOp.MAX)
    return float(t.item())


class _Objective(torch.nn.Module):
    """DDP synchronises gradients of what runs through forward(): route the family's objective there."""

    def __init__(self, family: torch.nn.Module):
        super().__init__()
        self.family = family

    def forward(self, batch: dict, objective: str, loss) -> dict[str, torch.Tensor]:
        return self.family.objective(batch, objective, loss)


def data_parallel(model: torch.nn.Module, device: torch.device, several_objectives: bool):
    """The callable that computes a training step's loss terms: the family's objective, wrapped in
    DDP when this process is one of several workers (torch.distributed initialised, e.g. by Ray
    Train).  Multitask families train different parameters in turn: DDP must look for unused ones."""
    if world() == 1:
        return model.objective
    from torch.nn.parallel import DistributedDataParallel

    if device.type == "cuda":  # batch statistics over the global batch, as one worker would see them
        torch.nn.SyncBatchNorm.convert_sync_batchnorm(model)
    return DistributedDataParallel(
        _Objective(model),
        device_ids=[device.index] if device.type == "cuda" else None,
        find_unused_parameters=several_objectives,
    )
