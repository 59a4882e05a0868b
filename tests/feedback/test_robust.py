"""Robust losses and the fine-tuning objective on weak-label batches."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest
import torch
from torch import nn

from drgnet.config import LossConfig, ModelConfig
from drgnet.losses import cross_entropy_per_sample, generalized_cross_entropy, small_loss_weights, soft_target_kl
from drgnet.model import DRGNet
from feedback.retrain import CorrectedImage, CorrectionDataset, FeedbackTask, RetrainConfig
from feedback.retrain.task import EMA_WARMUP_STEPS, make_teacher
from feedback.weak_labels import Vote, combine_votes


def test_gce_bounds_the_loss_of_contradicted_labels() -> None:
    logits = torch.tensor([[8.0, 0, 0, 0, 0], [8.0, 0, 0, 0, 0]])
    grades = torch.tensor([0, 4])  # the second label contradicts a confident prediction: a likely label error
    gce = generalized_cross_entropy(logits, grades, q=0.7)
    ce = cross_entropy_per_sample(logits, grades)
    assert gce[1] <= 1 / 0.7 and ce[1] > 7
    assert gce[1] / gce[0].clamp_min(1e-9) < ce[1] / ce[0]  # the noisy label weighs relatively less under GCE
    # Its gradient is damped too.
    lg = logits.clone().requires_grad_(True)
    generalized_cross_entropy(lg, grades)[1].backward()
    lc = logits.clone().requires_grad_(True)
    cross_entropy_per_sample(lc, grades)[1].backward()
    assert lg.grad.abs().sum() < 0.1 * lc.grad.abs().sum()
    # No grade: no loss; soft targets equal one-hot targets.
    assert generalized_cross_entropy(logits, torch.tensor([-1, -1])).sum() == 0
    onehot = torch.nn.functional.one_hot(grades, 5).float()
    assert torch.allclose(generalized_cross_entropy(logits, onehot), gce)
    assert soft_target_kl(logits, logits).abs().max() < 1e-5


def test_small_loss_selection_drops_the_noisiest_corrections_only() -> None:
    losses = torch.tensor([0.1, 5.0, 0.2, 0.3, 9.0, 0.1, 0.2, 0.3, 0.4, 0.5])
    eligible = torch.tensor([True] * 5 + [False] * 5)
    w = small_loss_weights(losses, 0.4, eligible)
    assert w.tolist() == [1, 0, 1, 1, 0, 1, 1, 1, 1, 1]
    assert small_loss_weights(losses[:1], 0.2).tolist() == [1.0]  # one sample: nothing dropped


def _weak_batch() -> dict[str, torch.Tensor]:
    rng = np.random.default_rng(0)
    image = (rng.random((64, 64, 3)) * 255).astype(np.uint8)
    pos = np.zeros((4, 64, 64), bool)
    pos[1, 20:30, 20:30] = True
    sup = pos.copy()
    sup[1, 40:50, 40:50] = True  # erased
    label = combine_votes(1, [Vote(1, "partial", 2, pos, sup)], {})
    items = [CorrectedImage(image, label), CorrectedImage(image[:, ::-1].copy(), label)]
    ds = CorrectionDataset(items, 64)
    return {k: torch.stack([ds[i][k] for i in range(2)]) for k in ds[0]}


def test_ignored_pixels_contribute_no_gradient(tiny_config: ModelConfig) -> None:
    torch.manual_seed(0)
    model = DRGNet(tiny_config).eval()
    batch = _weak_batch()
    weights = batch["mask_weights"]
    assert 0 < (weights > 0).float().mean() < 0.2  # a partial correction: most pixels ignored
    task = FeedbackTask(model, RetrainConfig())
    output = model(batch["image"])
    lesion_logits = output.lesion_logits.detach().requires_grad_(True)
    losses = task.losses(dataclasses.replace(output, lesion_logits=lesion_logits), batch)
    losses["loss"].backward()
    grad = lesion_logits.grad
    assert grad[weights == 0].abs().max() == 0
    assert grad[weights > 0].abs().sum() > 0


def test_grade_only_corrections_reach_the_lesion_branch_through_the_constraint(tiny_config: ModelConfig) -> None:
    torch.manual_seed(0)
    model = DRGNet(tiny_config).train()
    batch = _weak_batch()
    batch["mask_weights"] = torch.zeros_like(batch["mask_weights"])  # grade-only: no pixel label at all
    batch["grade"] = torch.tensor([4, 4])
    losses = FeedbackTask(model, RetrainConfig())(batch)
    assert losses["constraint"] > 0
    losses["loss"].backward()
    decoder_grad = sum(p.grad.abs().sum() for n, p in model.named_parameters() if "decoder" in n and p.grad is not None)
    assert decoder_grad > 0


def test_teacher_consistency_holds_unlabelled_pixels_only(tiny_config: ModelConfig) -> None:
    torch.manual_seed(0)
    model = DRGNet(tiny_config).eval()
    batch = _weak_batch()
    batch["fov"][:, :5] = 0  # (the random image's field of view is all of it)
    weights, fov = batch["mask_weights"], batch["fov"]
    with torch.no_grad():
        output = model(batch["image"])

    def lesion_grad(teacher, cfg):
        output = model(batch["image"])  # a graph of its own for each backward pass
        logits = output.lesion_logits.detach().requires_grad_(True)
        losses = FeedbackTask(model, cfg).losses(dataclasses.replace(output, lesion_logits=logits), batch, teacher)
        losses["loss"].backward()
        return logits.grad, losses

    # A teacher whose lesion maps are more confident everywhere.
    teacher = dataclasses.replace(output, lesion_logits=output.lesion_logits.detach() + 2.0)
    grad, losses = lesion_grad(teacher, RetrainConfig())
    unlabelled = (weights == 0) & (fov[:, None] > 0)
    assert losses["lesion_consistency"] > 0
    assert (grad[unlabelled] < 0).all()  # descent raises the student's logits towards the teacher's
    assert grad[fov[:, None].expand_as(weights) == 0].abs().max() == 0  # outside the field of view: nothing
    # On labelled pixels the teacher changes nothing: their gradient is the labels' alone.
    label_only, _ = lesion_grad(teacher, RetrainConfig(lesion_consistency_weight=0.0))
    assert torch.allclose(grad[weights > 0], label_only[weights > 0])
    assert label_only[weights == 0].abs().max() == 0
    # Where student and teacher agree the term pulls nowhere.
    same, _ = lesion_grad(dataclasses.replace(output, lesion_logits=output.lesion_logits.detach()), RetrainConfig())
    assert same[unlabelled].abs().max() < 1e-9
    # Naive fine-tuning has no teacher term.
    assert RetrainConfig().naive().lesion_consistency_weight == 0


def test_strokes_are_left_out_of_dice_unless_asked(tiny_config: ModelConfig) -> None:
    torch.manual_seed(0)
    model = DRGNet(tiny_config).eval()
    batch = _weak_batch()  # a partial correction: painted and erased squares on HE only
    with torch.no_grad():
        output = model(batch["image"])
    default = FeedbackTask(model, RetrainConfig()).losses(output, batch)
    with_strokes = FeedbackTask(model, RetrainConfig(partial_dice=True)).losses(output, batch)
    assert default["lesion_dice"] == 0  # no fully labelled map in the batch
    assert with_strokes["lesion_dice"] > 0
    assert torch.isclose(default["lesion_focal"], with_strokes["lesion_focal"])
    # A fully labelled map (every pixel of the field of view has weight) keeps its Dice.
    batch["mask_weights"][:, 2] = batch["fov"]
    batch["masks"][:, 2, 10:20, 10:20] = 1
    assert FeedbackTask(model, RetrainConfig()).losses(output, batch)["lesion_dice"] > 0
    assert RetrainConfig().naive().partial_dice  # the plain fine-tuning baseline is unchanged


def test_the_feedback_teacher_is_an_exponential_moving_average_with_a_warm_up() -> None:
    torch.manual_seed(0)
    student = nn.Sequential(nn.Linear(2, 2), nn.BatchNorm1d(2))
    assert make_teacher(student, 0.0) is None
    teacher = make_teacher(student, decay=0.99)
    assert not any(p.requires_grad for p in teacher.module.parameters())
    start = student[0].weight.detach().clone()
    with torch.no_grad():
        student[0].weight.add_(1.0)
        student[1].running_mean.fill_(5.0)
    teacher.update(student, step=4)  # decay 3 / (10 + 3): the warm-up, not 0.99
    decay = 3 / (EMA_WARMUP_STEPS + 3)
    expected = decay * start + (1 - decay) * student[0].weight
    assert torch.allclose(teacher.module[0].weight, expected)
    assert torch.equal(teacher.module[1].running_mean, student[1].running_mean)  # statistics are copied


def test_retraining_settings_nest_the_loss_and_still_read_old_flat_names() -> None:
    default = RetrainConfig()
    assert default.loss == LossConfig(grade_loss="gce")  # the joint loss's weights, written once
    cfg = RetrainConfig.from_params({"grade_loss": "ce", "loss.gce_q": 0.5, "steps": "3", "trigger": "manual"})
    assert (cfg.loss.grade_loss, cfg.loss.gce_q, cfg.steps) == ("ce", 0.5, 3)
    with pytest.raises(ValueError, match="loss.grade_loss must be 'gce' or 'ce'"):
        RetrainConfig.from_params({"loss.grade_loss": "ordinal"})
    assert math.isclose(default.naive().loss.lesion_focal_gamma, 0.0)
