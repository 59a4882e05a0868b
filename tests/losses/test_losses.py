"""Losses: the ignore mask ignores, the ordinal term orders, the constraint teaches the lesion branch."""

from __future__ import annotations

from dataclasses import replace

import pytest
import torch

from drgnet.config import LossConfig
from drgnet.losses import attention_coverage_loss, grade_loss, lesion_loss, symmetric_kl
from drgnet.model import DRGNet
from drgnet.training.task import JointTask


def _seg_inputs(seed=0):
    g = torch.Generator().manual_seed(seed)
    logits = torch.randn(2, 4, 16, 16, generator=g, requires_grad=True)
    targets = (torch.rand(2, 4, 16, 16, generator=g) > 0.8).float()
    weights = torch.ones_like(targets)
    weights[:, :, :, 8:] = 0  # right half ignored
    return logits, targets, weights


def test_ignored_pixels_get_no_gradient_and_do_not_change_the_loss():
    logits, targets, weights = _seg_inputs()
    loss = sum(lesion_loss(logits, targets, weights).values())
    loss.backward()
    assert logits.grad[:, :, :, 8:].abs().max() == 0
    assert logits.grad[:, :, :, :8].abs().max() > 0

    flipped = targets.clone()
    flipped[:, :, :, 8:] = 1 - flipped[:, :, :, 8:]
    again = sum(lesion_loss(logits.detach(), flipped, weights).values())
    torch.testing.assert_close(again, loss.detach())


def test_lesion_loss_is_low_for_a_confident_correct_prediction():
    _, targets, weights = _seg_inputs()
    good = (targets * 2 - 1) * 10
    bad = -good
    lg = lesion_loss(good, targets, weights)
    lb = lesion_loss(bad, targets, weights)
    assert lg["dice"] < 0.05 and lg["focal"] < 1e-3
    assert lb["dice"] > 0.9 and lb["focal"] > 1


def test_lesion_loss_with_nothing_annotated_is_zero_and_finite():
    logits, targets, _ = _seg_inputs()
    out = lesion_loss(logits, targets, torch.zeros_like(targets))
    assert out["dice"].item() == 0 and out["focal"].item() == 0


def test_ordinal_grade_loss_punishes_far_mistakes_more():
    target = torch.tensor([0])
    near = torch.tensor([[0.0, 4.0, 0.0, 0.0, 0.0]])
    far = torch.tensor([[0.0, 0.0, 0.0, 0.0, 4.0]])
    assert grade_loss(far, target, "ordinal") > grade_loss(near, target, "ordinal")
    torch.testing.assert_close(grade_loss(far, target, "ce"), grade_loss(near, target, "ce"))


def test_grade_loss_skips_images_without_grade():
    logits = torch.randn(3, 5, requires_grad=True)
    loss = grade_loss(logits, torch.tensor([2, -1, -1]), "ce")
    loss.backward()
    assert logits.grad[1:].abs().max() == 0
    assert grade_loss(logits, torch.tensor([-1, -1, -1])).item() == 0
    with pytest.raises(ValueError, match="unknown grade loss"):
        grade_loss(logits, torch.tensor([0, 1, 2]), "hinge")


def test_symmetric_kl_is_zero_for_equal_and_positive_for_different():
    a = torch.randn(4, 5)
    assert symmetric_kl(a, a).abs() < 1e-6
    assert symmetric_kl(a, a.flip(1)) > 0.01


def test_attention_coverage_counts_mass_outside_lesions():
    attention = torch.zeros(1, 1, 4, 4)
    attention[0, 0, 0, 0] = 1.0
    masks = torch.zeros(1, 4, 16, 16)
    masks[0, 1, :4, :4] = 1  # HE in the top-left cell
    weights = torch.ones_like(masks)
    assert attention_coverage_loss(attention, masks, weights).item() == pytest.approx(0.0)
    masks2 = torch.zeros_like(masks)
    masks2[0, 1, 12:, 12:] = 1
    assert attention_coverage_loss(attention, masks2, weights).item() == pytest.approx(1.0)
    # An unannotated lesion does not count.
    assert attention_coverage_loss(attention, masks2, torch.zeros_like(masks)).item() == 0


def _batch(grade_only: bool):
    torch.manual_seed(0)
    masks = torch.zeros(2, 4, 64, 64)
    masks[:, 1, 20:30, 20:30] = 1
    weights = torch.zeros_like(masks) if grade_only else torch.ones_like(masks)
    return {
        "image": torch.rand(2, 3, 64, 64),
        "masks": masks,
        "mask_weights": weights,
        "grade": torch.tensor([3, 0]),
    }


def test_constraint_gradient_reaches_the_lesion_branch_from_grades_alone(tiny_config):
    """With no mask annotated, only the grade and the constraint can move the lesion decoder."""
    torch.manual_seed(0)
    model = DRGNet(tiny_config)
    task = JointTask(model, LossConfig(lesion_weight=0.0, grade_weight=0.0, lesion_grade_weight=0.0))
    losses = task(_batch(grade_only=True))
    assert set(losses) >= {
        "loss",
        "lesion_dice",
        "lesion_focal",
        "grade",
        "lesion_grade",
        "constraint",
        "attention",
    }
    losses["constraint"].backward()
    grad = model.lesion_head[0].weight.grad
    assert grad is not None and grad.abs().sum() > 0
    dec = [p.grad for p in model.decoder.parameters() if p.grad is not None]
    assert dec and sum(float(g.abs().sum()) for g in dec) > 0


def test_without_the_constraint_the_task_drops_its_terms(tiny_config):
    model = DRGNet(replace(tiny_config, lesion_grade_constraint=False))
    losses = JointTask(model)(_batch(grade_only=False))
    assert "constraint" not in losses and "lesion_grade" not in losses
    expected = losses["lesion_dice"] + losses["lesion_focal"] + losses["grade"]
    torch.testing.assert_close(losses["loss"], expected)


def test_dice_pairs_leave_sparse_labels_to_the_focal_term():
    torch.manual_seed(0)
    logits = torch.randn(2, 4, 16, 16)
    targets = torch.zeros(2, 4, 16, 16)
    weights = torch.zeros(2, 4, 16, 16)
    targets[0, 1, 4:8, 4:8] = 1
    weights[0, 1, 4:8, 4:8] = 1  # image 0, HE: a painted stroke only
    targets[1, 2, 2:5, 2:5] = 1
    weights[1, 2] = 1  # image 1, EX: a full mask
    everything = lesion_loss(logits, targets, weights)
    full_only = torch.zeros(2, 4, dtype=torch.bool)
    full_only[1, 2] = True
    selected = lesion_loss(logits, targets, weights, dice_pairs=full_only)
    alone = lesion_loss(logits[1:, 2:3], targets[1:, 2:3], weights[1:, 2:3])
    assert torch.isclose(selected["dice"], alone["dice"])  # only the fully labelled pair counts in Dice
    assert not torch.isclose(selected["dice"], everything["dice"])
    assert torch.isclose(selected["focal"], everything["focal"])  # the focal term still sees the stroke
    # A stroke-only Dice is met by raising every prediction inside it: that is what the selection avoids.
    up = lesion_loss(logits + 5, targets, weights)
    assert up["dice"] < everything["dice"]


def test_batch_dice_pools_the_images_of_a_lesion_and_spares_an_image_without_it():
    # Image 0 has a 4x4 HE; image 1 has no HE but one faint doubtful pixel. Per-image Dice gives image 1 a
    # whole Dice of its own (near 1 for a single pixel at 0.5); batch Dice counts that pixel once among the
    # pooled sums, so its weight in the loss is that of one pixel, not of one image.
    logits = torch.full((2, 4, 8, 8), -8.0)
    targets = torch.zeros(2, 4, 8, 8)
    weights = torch.zeros(2, 4, 8, 8)
    weights[:, 1] = 1
    targets[0, 1, 2:6, 2:6] = 1
    logits[0, 1, 2:6, 2:6] = 8.0
    logits[1, 1, 0, 0] = 0.0  # p = 0.5 on an image without HE
    logits.requires_grad_(True)
    per_image = lesion_loss(logits, targets, weights, dice_over="image")
    batch = lesion_loss(logits, targets, weights, dice_over="batch")
    assert per_image["dice"] > 0.15  # image 1's Dice: 1 - 1 / (0.5 + 1) = 0.33, halved by the mean
    assert batch["dice"] < 0.05  # 1 - (2*16 + 1) / (16 + 0.5 + 16 + 1)
    assert torch.isclose(per_image["focal"], batch["focal"])
    grad_image = torch.autograd.grad(per_image["dice"], logits)[0][1, 1, 0, 0]
    grad_batch = torch.autograd.grad(batch["dice"], logits)[0][1, 1, 0, 0]
    assert grad_image > 5 * grad_batch > 0  # the doubtful pixel is pushed down far harder per image
    # One image: both forms are the same Dice.
    single = [lesion_loss(logits[:1], targets[:1], weights[:1], dice_over=d)["dice"] for d in ("image", "batch")]
    assert torch.isclose(single[0], single[1])
    with pytest.raises(ValueError, match="dice_over"):
        lesion_loss(logits, targets, weights, dice_over="pixel")


def test_the_joint_task_passes_the_dice_form_on(tiny_config):
    torch.manual_seed(0)
    model = DRGNet(tiny_config)
    batch = {
        "image": torch.rand(2, 3, 64, 64),
        "masks": torch.zeros(2, 4, 64, 64),
        "mask_weights": torch.ones(2, 4, 64, 64),
        "grade": torch.tensor([0, 2]),
    }
    batch["masks"][0, 1, 10:20, 10:20] = 1
    model.eval()
    image = JointTask(model, LossConfig())(batch)["lesion_dice"]
    pooled = JointTask(model, LossConfig(lesion_dice_over="batch"))(batch)["lesion_dice"]
    assert not torch.isclose(image, pooled)
