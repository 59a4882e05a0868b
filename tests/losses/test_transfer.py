"""Transfer losses and the adapt step: OT behaves like a distance, gradients go where they should."""

from __future__ import annotations

import pytest
import torch

from drgnet.config import TransferConfig
from drgnet.losses.transfer import (
    LesionDiscriminator,
    adversarial_loss,
    discriminator_loss,
    entropy_loss,
    grade_entropy,
    self_information,
    wasserstein_distance,
)
from drgnet.model import DRGNet
from drgnet.training.adapt import AdaptTask, adapt_step


@pytest.mark.parametrize("method", ["emd", "sliced"])
def test_ot_is_zero_for_identical_batches_and_grows_with_shift(method):
    g = torch.Generator().manual_seed(0)
    x = torch.randn(16, 8, generator=g)
    same = wasserstein_distance(x, x.clone(), method, projections=128, seed=0)
    assert same.item() == pytest.approx(0.0, abs=1e-5)
    values = [wasserstein_distance(x, x + s, method, projections=128, seed=0).item() for s in (0.5, 1.0, 2.0)]
    assert values[0] < values[1] < values[2]
    # A shift by s in every one of 8 dimensions costs 8 s^2 in squared-Euclidean OT.
    if method == "emd":
        assert values[1] == pytest.approx(8.0, rel=1e-4)


def test_ot_rejects_bad_input():
    with pytest.raises(ValueError, match="unknown Wasserstein method"):
        wasserstein_distance(torch.zeros(2, 3), torch.zeros(2, 3), "kl")
    with pytest.raises(ValueError, match="equal D"):
        wasserstein_distance(torch.zeros(2, 3), torch.zeros(2, 4))


def test_ot_gradient_reaches_the_encoder(tiny_config):
    torch.manual_seed(0)
    model = DRGNet(tiny_config)
    src = model(torch.rand(4, 3, 64, 64)).pooled
    tgt = model(torch.rand(4, 3, 64, 64) * 0.3).pooled
    wasserstein_distance(src, tgt).backward()
    grads = [p.grad for p in model.encoder.parameters() if p.grad is not None]
    assert grads and sum(float(g.abs().sum()) for g in grads) > 0


def test_self_information_and_entropy_are_highest_when_unsure():
    sure = torch.full((1, 4, 8, 8), 8.0)
    unsure = torch.zeros(1, 4, 8, 8)
    assert self_information(unsure).mean().item() == pytest.approx(1.0)
    assert self_information(sure).mean().item() < 0.01
    flat, peaked = torch.zeros(1, 5), torch.tensor([[10.0, 0, 0, 0, 0]])
    assert entropy_loss(unsure, flat) > entropy_loss(sure, peaked)


def test_the_differentiable_grade_entropy_is_the_clinical_uncertainty():
    from drgnet.labels import normalised_entropy

    logits = torch.randn(6, 5) * 3
    expected = [normalised_entropy(p) for p in torch.softmax(logits, dim=1).tolist()]
    assert grade_entropy(logits).tolist() == pytest.approx(expected, abs=1e-5)


def test_discriminator_losses_push_opposite_ways():
    disc = LesionDiscriminator()
    info_s, info_t = torch.rand(2, 4, 32, 32) * 0.1, torch.rand(2, 4, 32, 32)
    d = discriminator_loss(disc, info_s, info_t)
    a = adversarial_loss(disc, info_t)
    assert d.item() > 0 and a.item() > 0


def _snapshot(module):
    return {k: v.detach().clone() for k, v in module.state_dict().items() if v.dtype.is_floating_point}


def _changed(before, module):
    now = module.state_dict()
    return {k for k, v in before.items() if not torch.equal(v, now[k])}


def test_adapt_step_updates_the_network_and_the_discriminator_each_only_by_its_own_loss(tiny_config):
    torch.manual_seed(0)
    model = DRGNet(tiny_config)
    task = AdaptTask(model, TransferConfig(adversarial_weight=1.0, entropy_weight=0.0, wasserstein_weight=0.0))
    source = {
        "image": torch.rand(2, 3, 64, 64),
        "masks": torch.zeros(2, 4, 64, 64),
        "mask_weights": torch.ones(2, 4, 64, 64),
        "grade": torch.tensor([0, 2]),
    }
    target = torch.rand(2, 3, 64, 64)
    batch = {**source, "target_image": target}

    # Network step alone: the discriminator is frozen while the adversarial loss back-propagates through it.
    model_opt = torch.optim.SGD(model.parameters(), lr=0.1)
    for g in model_opt.param_groups:
        g["initial_lr"] = g["lr"]
    own_disc_opt, task.discriminator_optimizer = task.discriminator_optimizer, None
    disc_before, model_before = _snapshot(task.discriminator), _snapshot(model)
    adapt_step(task, model_opt, batch, step=100)
    assert not _changed(disc_before, task.discriminator)
    assert _changed(model_before, model)

    # The loop's step with the task's own discriminator optimiser moves both, each by its own loss.
    task.discriminator_optimizer = own_disc_opt
    disc_before = _snapshot(task.discriminator)
    logged = adapt_step(task, model_opt, batch, step=101)
    assert _changed(disc_before, task.discriminator)
    assert "discriminator" in logged and "adversarial" in logged

    # A discriminator step changes the discriminator and leaves the network as it is.
    disc_opt = torch.optim.SGD(task.discriminator.parameters(), lr=0.1)
    task.before_step(100)
    task.discriminator.requires_grad_(True)
    losses = task(batch)
    model_before, disc_before = _snapshot(model), _snapshot(task.discriminator)
    d = discriminator_loss(task.discriminator, losses["_info_source"], losses["_info_target"])
    disc_opt.zero_grad()
    model_opt.zero_grad()
    d.backward()
    assert all(p.grad is None for p in model.parameters())
    disc_opt.step()
    assert _changed(disc_before, task.discriminator)
    assert not _changed(model_before, model)

    # The adversarial loss is what moves the network toward fooling the critic.
    torch.manual_seed(1)
    only_adv = AdaptTask(
        DRGNet(tiny_config), TransferConfig(adversarial_weight=1.0, entropy_weight=0.0, wasserstein_weight=0.0)
    )
    only_adv.before_step(100)
    losses = only_adv(batch)
    losses["adversarial"].backward()
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in only_adv.model.lesion_head.parameters())
