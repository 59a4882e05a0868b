"""Dual-level attention: lesion-driven gates on fine features and lesion-aware pooling of deep features."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

_EPS = 1e-6


def lesion_evidence(lesion_probs: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Lesion probabilities brought to a coarser grid by max pooling.

    Max rather than average pooling: a microaneurysm covers a few pixels and would vanish in an average.
    """
    # Python ints, not traced shape values: the ONNX export then sees a constant kernel (the input size is fixed
    # there; only the batch axis is dynamic).
    h, w = (int(s) for s in lesion_probs.shape[-2:])
    out_h, out_w = int(size[0]), int(size[1])
    if (h, w) == (out_h, out_w):
        return lesion_probs
    if h % out_h == 0 and w % out_w == 0:
        # Identical to adaptive max pooling when the sizes divide (always, for inputs that are multiples of 32),
        # and exportable to ONNX, which has no adaptive pooling with a computed output size.
        return F.max_pool2d(lesion_probs, kernel_size=(h // out_h, w // out_w))
    return F.adaptive_max_pool2d(lesion_probs, (out_h, out_w))


class LowLevelAttention(nn.Module):
    """Spatial gates on high-resolution encoder features, driven by the lesion maps.

    For each level a gate ``a = sigmoid(conv(lesion evidence) + conv(features))`` weights the projected
    features; the descriptor of a level is the gate-weighted mean and the max of the gated features, so a few
    strong microaneurysm pixels still register.
    """

    def __init__(self, feature_channels: tuple[int, ...], num_lesions: int, dim: int) -> None:
        super().__init__()
        self.from_lesions = nn.ModuleList(
            nn.Sequential(nn.Conv2d(num_lesions, 16, 3, padding=1), nn.ReLU(inplace=True), nn.Conv2d(16, 1, 1))
            for _ in feature_channels
        )
        self.from_features = nn.ModuleList(nn.Conv2d(c, 1, 1) for c in feature_channels)
        self.project = nn.ModuleList(
            nn.Sequential(nn.Conv2d(c, dim, 1, bias=False), nn.BatchNorm2d(dim), nn.ReLU(inplace=True))
            for c in feature_channels
        )
        self.out_dim = 2 * dim * len(feature_channels)

    def forward(
        self, features: list[torch.Tensor], lesion_probs: torch.Tensor
    ) -> tuple[torch.Tensor, list[torch.Tensor]]:
        descriptors, gates = [], []
        for feat, gate_l, gate_f, proj in zip(
            features, self.from_lesions, self.from_features, self.project, strict=True
        ):
            evidence = lesion_evidence(lesion_probs, tuple(feat.shape[-2:]))
            gate = torch.sigmoid(gate_l(evidence) + gate_f(feat))
            value = proj(feat) * gate
            mean = value.sum(dim=(2, 3)) / (gate.sum(dim=(2, 3)) + _EPS)
            peak = value.amax(dim=(2, 3))
            descriptors += [mean, peak]
            gates.append(gate)
        return torch.cat(descriptors, dim=1), gates


class HighLevelAttention(nn.Module):
    """Lesion-aware pooling plus global pooling of the deepest features, combined by learned weights.

    Tokens: an attentive-pooled descriptor (a learned spatial softmax), the global average, and one descriptor
    per lesion (features weighted by that lesion's probability map). A small scorer gives each token a weight;
    the fused descriptor is their weighted sum, and the exposed spatial attention map is the same mixture of
    the tokens' spatial weightings (each a distribution over positions), so it shows what the grade looked at.
    With ``enabled=False`` the fused descriptor is the plain global average (the ablation), and the map is
    the normalised feature energy.
    """

    def __init__(self, in_channels: int, num_lesions: int, dim: int, enabled: bool = True) -> None:
        super().__init__()
        self.enabled = enabled
        self.num_lesions = num_lesions
        self.project = nn.Sequential(
            nn.Conv2d(in_channels, dim, 1, bias=False), nn.BatchNorm2d(dim), nn.ReLU(inplace=True)
        )
        self.spatial = nn.Conv2d(dim, 1, 1)
        self.token_type = nn.Parameter(torch.zeros(2 + num_lesions, dim))
        self.scorer = nn.Sequential(nn.Linear(dim, dim // 2), nn.Tanh(), nn.Linear(dim // 2, 1))

    def forward(self, deep: torch.Tensor, lesion_probs: torch.Tensor) -> dict[str, torch.Tensor]:
        z = self.project(deep)  # (B, D, h, w)
        b, _, h, w = z.shape
        p = lesion_evidence(lesion_probs, (h, w))  # (B, K, h, w)
        mass = p.sum(dim=(2, 3))  # (B, K)
        lesion_weights = p / (mass[:, :, None, None] + _EPS)
        lesion_tokens = torch.einsum("bdhw,bkhw->bkd", z, lesion_weights)  # (B, K, D)
        pooled = z.mean(dim=(2, 3))
        uniform = torch.full((b, 1, h, w), 1.0 / (h * w), device=z.device, dtype=z.dtype)
        if self.enabled:
            spatial = torch.softmax(self.spatial(z).flatten(1), dim=1).view(b, 1, h, w)
            attentive = torch.einsum("bdhw,bhw->bd", z, spatial[:, 0])
            tokens = torch.cat([attentive[:, None], pooled[:, None], lesion_tokens], dim=1) + self.token_type
            token_weights = torch.softmax(self.scorer(tokens).squeeze(-1), dim=1)  # (B, 2 + K)
            fused = (token_weights[..., None] * tokens).sum(dim=1)
            maps = torch.cat([spatial, uniform, lesion_weights], dim=1)  # (B, 2 + K, h, w), each sums to 1
            attention = (token_weights[:, :, None, None] * maps).sum(dim=1, keepdim=True)
        else:
            fused = pooled
            energy = z.pow(2).mean(dim=1, keepdim=True)
            attention = energy / (energy.sum(dim=(2, 3), keepdim=True) + _EPS)
            token_weights = torch.zeros(b, 2 + self.num_lesions, device=z.device, dtype=z.dtype)
            token_weights[:, 1] = 1.0
        return {
            "fused": fused,
            "pooled": pooled,
            "lesion_tokens": lesion_tokens,
            "lesion_mass": mass / (h * w),
            "attention": attention,
            "token_weights": token_weights,
        }
