import importlib.util

import pytest
import torch
import torch.nn.functional as F
from conftest import REFERENCE_STEP

from vgs.losses import hinge_all_negatives


def slow_hinge(a, b, margin, same=None, reduction="mean"):
    """Eq. 3 of Mortazavi 2020 (mean) / eq. 1 of Chrupała 2019 (sum) written out pair by pair."""
    n = a.shape[0]
    total, count = 0.0, 0
    for i in range(n):
        for j in range(n):
            if i == j or (same is not None and same[i][j]):
                continue
            s_ij = float(a[i] @ b[j])
            total += max(0.0, s_ij - float(a[i] @ b[i]) + margin)  # caption i, wrong image j
            total += max(0.0, s_ij - float(a[j] @ b[j]) + margin)  # image j, wrong caption i
            count += 1
    return total if reduction == "sum" else total / count


@pytest.mark.parametrize("n,margin", [(2, 0.2), (7, 0.2), (16, 0.5)])
def test_hinge_matches_pairwise_reference(n, margin):
    g = torch.Generator().manual_seed(n)
    a = F.normalize(torch.randn(n, 12, generator=g), dim=-1)
    b = F.normalize(torch.randn(n, 12, generator=g), dim=-1)
    assert hinge_all_negatives(a, b, margin).item() == pytest.approx(slow_hinge(a, b, margin), rel=1e-5)


@pytest.mark.parametrize("n", [2, 9])
def test_summed_hinge_matches_pairwise_reference_and_is_the_mean_times_the_pairs(n):
    """train.loss_reduction=sum (Chrupała 2019 eq. 1, the chrupala2019 base): its clipping at 2.0
    acts on this gradient, n(n-1) times the mean's."""
    g = torch.Generator().manual_seed(n)
    a = F.normalize(torch.randn(n, 12, generator=g), dim=-1)
    b = F.normalize(torch.randn(n, 12, generator=g), dim=-1)
    summed = hinge_all_negatives(a, b, 0.2, reduction="sum").item()
    assert summed == pytest.approx(slow_hinge(a, b, 0.2, reduction="sum"), rel=1e-5)
    assert summed == pytest.approx(hinge_all_negatives(a, b, 0.2).item() * n * (n - 1), rel=1e-5)


def test_the_paper_bases_state_their_loss_reduction():
    from vgs.config import ConfigError, apply_overrides, base_config, check_consistent

    assert base_config("chrupala2019").train.loss_reduction == "sum"
    assert {base_config(b).train.loss_reduction for b in ("paper", "higy2020", "cpu-small")} == {"mean"}
    with pytest.raises(ConfigError, match="train.loss_reduction must be mean or sum"):
        check_consistent(apply_overrides(base_config("cpu-tiny"), {"train.loss_reduction": "max"}))


def test_the_papers_negatives_take_every_other_pair_of_the_batch():
    """train.negatives=batch: captions of one image in a batch are each other's negatives, as the
    papers' equations have it; the default leaves those pairs out."""
    from vgs.config import apply_overrides, base_config
    from vgs.losses import Loss, contrastive

    g = torch.Generator().manual_seed(3)
    a = F.normalize(torch.randn(6, 8, generator=g), dim=-1)
    b = F.normalize(torch.randn(6, 8, generator=g), dim=-1)
    ids = torch.tensor([0, 1, 0, 2, 3, 1])
    papers = Loss.of(apply_overrides(base_config("cpu-tiny"), {"train.negatives": "batch"}).train)
    assert papers.same_image_negatives and not Loss.of(base_config("cpu-tiny").train).same_image_negatives
    assert contrastive(a, b, papers, ids).item() == pytest.approx(slow_hinge(a, b, 0.2), rel=1e-5)
    same = (ids[:, None] == ids[None, :]).tolist()
    assert contrastive(a, b, Loss(), ids).item() == pytest.approx(slow_hinge(a, b, 0.2, same), rel=1e-5)


def test_hinge_masks_captions_of_the_same_image():
    g = torch.Generator().manual_seed(0)
    a = F.normalize(torch.randn(6, 8, generator=g), dim=-1)
    b = F.normalize(torch.randn(6, 8, generator=g), dim=-1)
    ids = torch.tensor([0, 1, 0, 2, 3, 1])
    same = ids[:, None] == ids[None, :]
    got = hinge_all_negatives(a, b, 0.2, same_image=same).item()
    assert got == pytest.approx(slow_hinge(a, b, 0.2, same.tolist()), rel=1e-5)
    assert got != pytest.approx(hinge_all_negatives(a, b, 0.2).item(), rel=1e-3)


def test_hinge_equals_shared_reference_step():
    if not REFERENCE_STEP.exists():
        pytest.skip(f"reference step not found at {REFERENCE_STEP}")
    spec = importlib.util.spec_from_file_location("reference_step", REFERENCE_STEP)
    ref = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(ref)
    g = torch.Generator().manual_seed(5)
    a = F.normalize(torch.randn(32, 64, generator=g), dim=-1)
    b = F.normalize(torch.randn(32, 64, generator=g), dim=-1)
    assert hinge_all_negatives(a, b).item() == pytest.approx(ref.hinge_all_negatives(a, b).item(), rel=1e-6)


def test_perfect_alignment_gives_zero_loss():
    a = torch.eye(5)
    assert hinge_all_negatives(a, a.clone(), margin=0.2).item() == 0.0
