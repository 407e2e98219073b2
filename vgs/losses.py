"""Loss functions: pure, tested against slow references in tests/test_losses.py."""

from __future__ import annotations

import torch


def hinge_all_negatives(
    speech: torch.Tensor, image: torch.Tensor, margin: float = 0.2, same_image: torch.Tensor | None = None
) -> torch.Tensor:
    """Mortazavi 2020 eq. 3: hinge over every non-aligned pair in the batch, both directions.

    speech, image: (B, N) L2-normalised, row i of each aligned.  same_image: optional (B, B) bool,
    True where captions i and j describe the same image; those pairs are not negatives.
    Normalised by the number of negative pairs, which is |B|(|B|-1) when no image repeats.
    """
    s = speech @ image.t()  # s[i, j] = S(a_i, i_j)
    d = s.diag()
    negative = ~torch.eye(s.size(0), dtype=torch.bool, device=s.device)
    if same_image is not None:
        negative &= ~same_image
    speech_to_image = (margin + s - d[:, None]).clamp(min=0)  # caption i against image j
    image_to_speech = (margin + s - d[None, :]).clamp(min=0)  # image j against caption i
    total = (speech_to_image + image_to_speech).masked_fill(~negative, 0).sum()
    return total / negative.sum().clamp(min=1)
