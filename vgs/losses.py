"""Loss functions: pure, tested against slow references in tests/test_losses.py; and the
contrastive objective of every family, over the global batch when a trial has several workers."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from vgs import distributed
from vgs.config import TrainConfig


def hinge_all_negatives(
    speech: torch.Tensor,
    image: torch.Tensor,
    margin: float = 0.2,
    same_image: torch.Tensor | None = None,
    reduction: str = "mean",
) -> torch.Tensor:
    """Mortazavi 2020 eq. 3: hinge over every non-aligned pair in the batch, both directions.

    speech, image: (B, N) L2-normalised, row i of each aligned.  same_image: optional (B, B) bool,
    True where captions i and j describe the same image; those pairs are not negatives.
    reduction "mean": divided by the number of negative pairs, |B|(|B|-1) when no image repeats;
    "sum": the sum over pairs as Chrupała 2019 eq. 1 writes it (its gradient, and so what a
    clipping threshold means, is that many times larger).
    """
    s = speech @ image.t()  # s[i, j] = S(a_i, i_j)
    d = s.diag()
    negative = ~torch.eye(s.size(0), dtype=torch.bool, device=s.device)
    if same_image is not None:
        negative &= ~same_image
    speech_to_image = (margin + s - d[:, None]).clamp(min=0)  # caption i against image j
    image_to_speech = (margin + s - d[None, :]).clamp(min=0)  # image j against caption i
    total = (speech_to_image + image_to_speech).masked_fill(~negative, 0).sum()
    return total if reduction == "sum" else total / negative.sum().clamp(min=1)


@dataclass(frozen=True)
class Loss:
    """How the contrastive objectives are computed: the hinge margin (train.margin), whether,
    with several workers, negatives come from every worker's rows (train.gather_negatives), and
    mean or sum over the negative pairs (train.loss_reduction)."""

    margin: float = 0.2
    gather_negatives: bool = False
    reduction: str = "mean"
    same_image_negatives: bool = False  # train.negatives=batch: the papers' every other pair

    @classmethod
    def of(cls, train: TrainConfig) -> Loss:
        return cls(train.margin, train.gather_negatives, train.loss_reduction, train.negatives == "batch")


def contrastive(
    queries: torch.Tensor, targets: torch.Tensor, loss: Loss, image_ids: torch.Tensor | None = None
) -> torch.Tensor:
    """Hinge over all negatives of the batch; with several workers and loss.gather_negatives,
    over the global batch (every rank's rows), so the step matches one worker's.  image_ids: pairs
    of captions of the same image are not negatives."""
    if loss.gather_negatives and distributed.world() > 1:
        queries, targets = distributed.gather_with_grad(queries), distributed.gather_with_grad(targets)
        if image_ids is not None:
            image_ids = distributed.gather_with_grad(image_ids)
    same = None if image_ids is None or loss.same_image_negatives else image_ids[:, None] == image_ids[None, :]
    return hinge_all_negatives(queries, targets, loss.margin, same_image=same, reduction=loss.reduction)
