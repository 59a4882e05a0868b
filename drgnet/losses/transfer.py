"""Transfer to a new camera: Wasserstein feature alignment (POT) and adversarial entropy minimisation (ADVENT).

- ``wasserstein_distance``: minibatch optimal transport between source and target pooled features. The exact
  cost (``ot.emd2``) runs through POT's torch backend, so its gradient (through the cost matrix) reaches the
  encoder; the sliced variant scales to large batches.
- ``self_information``: per-pixel binary entropy of each lesion map, the input of the discriminator.
- ``LesionDiscriminator`` learns to tell source maps from target maps; ``adversarial_loss`` trains the network to
  make target maps look like source ones; ``entropy_loss`` pushes target predictions to be confident directly.
"""

from __future__ import annotations

import math

import ot
import torch
import torch.nn.functional as F
from torch import nn

WASSERSTEIN_METHODS = ("emd", "sliced")
SOURCE, TARGET = 1.0, 0.0  # discriminator labels


def wasserstein_distance(
    source: torch.Tensor, target: torch.Tensor, method: str = "emd", projections: int = 64, seed: int | None = None
) -> torch.Tensor:
    """Optimal-transport distance between two feature batches ``(Ns, D)`` and ``(Nt, D)`` (uniform weights).

    ``"emd"``: exact squared-Euclidean OT cost (``ot.emd2``); ``"sliced"``: sliced Wasserstein-2 over random
    projections. Both are 0 for identical batches and grow with a shift; gradients flow to both inputs.
    """
    if method not in WASSERSTEIN_METHODS:
        raise ValueError(f"unknown Wasserstein method {method!r}; choose one of {', '.join(WASSERSTEIN_METHODS)}")
    if source.ndim != 2 or target.ndim != 2 or source.shape[1] != target.shape[1]:
        raise ValueError(
            f"feature batches must be (N, D) with equal D, got {tuple(source.shape)}, {tuple(target.shape)}"
        )
    source, target = source.float(), target.float()
    if method == "sliced":
        return ot.sliced_wasserstein_distance(source, target, n_projections=projections, seed=seed) ** 2
    a = torch.full((source.shape[0],), 1.0 / source.shape[0], device=source.device)
    b = torch.full((target.shape[0],), 1.0 / target.shape[0], device=target.device)
    cost = ot.dist(source, target)  # squared Euclidean
    return ot.emd2(a, b, cost)


def self_information(lesion_logits: torch.Tensor) -> torch.Tensor:
    """Binary entropy of each lesion probability, in [0, 1] (bits): ``(B, K, H, W)``."""
    p = torch.sigmoid(lesion_logits)
    log_p = F.logsigmoid(lesion_logits)
    log_q = F.logsigmoid(-lesion_logits)
    return -(p * log_p + (1 - p) * log_q) / math.log(2)


def grade_entropy(grade_logits: torch.Tensor) -> torch.Tensor:
    """Normalised entropy of each predicted grade distribution, differentiable: ``(B,)`` in [0, 1].

    :func:`drgnet.labels.normalised_entropy` (the uncertainty shown with every grade) computed from the logits
    through log-softmax, so it has gradients where a probability underflows to 0 (the clamp there has none).
    """
    log_p = F.log_softmax(grade_logits, dim=1)
    return -(log_p.exp() * log_p).sum(dim=1) / math.log(grade_logits.shape[1])


def entropy_loss(lesion_logits: torch.Tensor, grade_logits: torch.Tensor) -> torch.Tensor:
    """Mean lesion-map entropy plus mean normalised grade entropy of (target) predictions."""
    return self_information(lesion_logits).mean() + grade_entropy(grade_logits).mean()


class LesionDiscriminator(nn.Module):
    """A small fully convolutional critic on self-information maps: one source/target logit per patch."""

    def __init__(self, in_channels: int = 4, width: int = 32) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        channels = in_channels
        for out in (width, 2 * width, 4 * width, 4 * width):
            layers += [nn.Conv2d(channels, out, 4, stride=2, padding=1), nn.LeakyReLU(0.2, inplace=True)]
            channels = out
        layers.append(nn.Conv2d(channels, 1, 3, padding=1))
        self.net = nn.Sequential(*layers)

    def forward(self, info: torch.Tensor) -> torch.Tensor:
        return self.net(info)


def discriminator_loss(disc: LesionDiscriminator, info_source: torch.Tensor, info_target: torch.Tensor) -> torch.Tensor:
    """Train the critic: source maps -> 1, target maps -> 0. Inputs are detached: the network is not updated."""
    ds, dt = disc(info_source.detach()), disc(info_target.detach())
    return 0.5 * (
        F.binary_cross_entropy_with_logits(ds, torch.full_like(ds, SOURCE))
        + F.binary_cross_entropy_with_logits(dt, torch.full_like(dt, TARGET))
    )


def adversarial_loss(disc: LesionDiscriminator, info_target: torch.Tensor) -> torch.Tensor:
    """Train the network: make the critic call target maps "source"."""
    dt = disc(info_target)
    return F.binary_cross_entropy_with_logits(dt, torch.full_like(dt, SOURCE))
