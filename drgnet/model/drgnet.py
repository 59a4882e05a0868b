"""DRGNet: one encoder, a U-Net lesion decoder, dual-level attention and a grade head."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import timm
import torch
import torch.nn.functional as F
from segmentation_models_pytorch.base.heads import SegmentationHead
from segmentation_models_pytorch.decoders.unet.decoder import UnetDecoder
from segmentation_models_pytorch.encoders import get_encoder
from torch import nn

from drgnet.config import ModelConfig
from drgnet.labels import NUM_GRADES, NUM_LESIONS
from drgnet.model._attention import HighLevelAttention, LowLevelAttention
from drgnet.model._contrast import LocalContrast
from drgnet.model._pretrained import has_shipped_weights, load_imagenet_weights
from drgnet.model._weights import load_encoder_weights

#: Tokens of the high-level attention, in the order of ``ModelOutput.token_weights``.
ATTENTION_TOKENS: tuple[str, ...] = ("attentive", "global", "MA", "HE", "EX", "SE")


def scale_gradient(x: torch.Tensor, scale: float) -> torch.Tensor:
    """``x`` unchanged in the forward pass (bit for bit); its gradient multiplied by ``scale`` in the backward pass."""
    if scale == 1.0 or not torch.is_grad_enabled() or torch.onnx.is_in_onnx_export():
        return x  # nothing flows back (inference, ONNX export): no extra operations in the graph
    held = x.detach()
    return held + scale * (x - held)


@dataclass
class ModelOutput:
    """Everything one forward pass returns, whatever the configuration.

    Attributes:
        lesion_logits: ``(B, 4, H, W)`` per-lesion logits at input resolution (sigmoid -> probability).
        grade_logits: ``(B, 5)`` logits of the fused grade, the model's answer.
        lesion_grade_logits: ``(B, 5)`` logits of the grade from lesion descriptors alone (the constraint).
        attention: ``(B, 1, H/32, W/32)`` high-level spatial attention; each map sums to 1.
        low_level_attention: ``(B, 1, H/4, W/4)`` lesion-driven gate on stride-4 features (ones if off).
        token_weights: ``(B, 6)`` weights of the high-level tokens, see ``ATTENTION_TOKENS``.
        pooled: ``(B, D)`` globally pooled deep features (the domain-alignment losses use these).
    """

    lesion_logits: torch.Tensor
    grade_logits: torch.Tensor
    lesion_grade_logits: torch.Tensor
    attention: torch.Tensor
    low_level_attention: torch.Tensor
    token_weights: torch.Tensor
    pooled: torch.Tensor


def _normalisation(encoder: str) -> tuple[tuple[float, ...], tuple[float, ...]]:
    try:
        cfg = timm.get_pretrained_cfg(encoder.split(".")[0])
    except Exception:  # noqa: BLE001 - unknown tags simply fall back to ImageNet statistics
        cfg = None
    if cfg is not None and getattr(cfg, "mean", None):
        return tuple(cfg.mean), tuple(cfg.std)
    return (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)


class DRGNet(nn.Module):
    """Joint DR grading and multi-lesion segmentation.

    Input: ``(B, 3, H, W)`` RGB in [0, 1] with H and W multiples of 32; the network normalises internally so
    every caller (training, inference, ONNX) feeds the same thing.
    """

    def __init__(self, config: ModelConfig | None = None) -> None:
        super().__init__()
        self.config = config = config or ModelConfig()
        if not 0.0 <= config.grade_gradient_to_lesions <= 1.0:
            raise ValueError(f"grade_gradient_to_lesions must lie in [0, 1], got {config.grade_gradient_to_lesions}")
        self.contrast = (
            LocalContrast(config.local_contrast_sigma_px, config.local_contrast_gain)
            if config.local_contrast_sigma_px > 0
            else None
        )
        self.encoder = get_encoder(f"tu-{config.encoder}", in_channels=3, depth=5, weights=None)
        self._init_encoder(config)
        channels = list(self.encoder.out_channels)  # [3, s2, s4, s8, s16, s32]
        mean, std = _normalisation(config.encoder)
        self.register_buffer("mean", torch.tensor(mean).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(std).view(1, 3, 1, 1), persistent=False)

        self.decoder = UnetDecoder(
            encoder_channels=channels,
            decoder_channels=config.decoder_channels,
            n_blocks=len(config.decoder_channels),
        )
        self.lesion_head = SegmentationHead(config.decoder_channels[-1], NUM_LESIONS, kernel_size=3)
        nn.init.constant_(self.lesion_head[0].bias, -4.0)  # lesions are rare: start near p = 0.02

        dim = config.embed_dim
        self.low_level = (
            LowLevelAttention((channels[2], channels[3]), NUM_LESIONS, dim // 2) if config.low_level_attention else None
        )
        self.high_level = HighLevelAttention(channels[-1], NUM_LESIONS, dim, enabled=config.high_level_attention)
        grade_in = dim + (self.low_level.out_dim if self.low_level is not None else 0)
        self.grade_head = nn.Sequential(
            nn.Dropout(config.dropout),
            nn.Linear(grade_in, dim),
            nn.ReLU(inplace=True),
            nn.Linear(dim, NUM_GRADES),
        )
        # Lesion descriptors plus per-lesion extent (mean, peak probability and pooled mass).
        self.lesion_grade_head = nn.Sequential(
            nn.Dropout(config.dropout),
            nn.Linear(NUM_LESIONS * dim + 3 * NUM_LESIONS, dim),
            nn.ReLU(inplace=True),
            nn.Linear(dim, NUM_GRADES),
        )

    def _init_encoder(self, config: ModelConfig) -> None:
        weights = config.encoder_weights
        if weights is None:
            return
        if weights == "imagenet":
            if not has_shipped_weights(config.encoder):
                raise ValueError(
                    f"encoder {config.encoder!r} has no shipped ImageNet weights; use efficientnet_lite0/1/2 "
                    "(or tf_ variants), a .safetensors file, or encoder_weights=null"
                )
            load_imagenet_weights(self.encoder.model, config.encoder)
            return
        load_encoder_weights(self.encoder, Path(weights))

    def forward(self, images: torch.Tensor) -> ModelOutput:
        if images.ndim != 4 or images.shape[1] != 3:
            raise ValueError(f"expected images of shape (B, 3, H, W), got {tuple(images.shape)}")
        if images.shape[-1] % 32 or images.shape[-2] % 32:
            raise ValueError(f"image height and width must be multiples of 32, got {tuple(images.shape[-2:])}")
        x = self.contrast(images) if self.contrast is not None else images
        x = (x - self.mean) / self.std
        features = self.encoder(x)
        lesion_logits = self.lesion_head(self.decoder(features))
        # What the grading side sees of the lesion maps: the same values, a damped gradient (ModelConfig).
        lesion_probs = scale_gradient(torch.sigmoid(lesion_logits), self.config.grade_gradient_to_lesions)

        high = self.high_level(features[-1], lesion_probs)
        if self.low_level is not None:
            low_desc, gates = self.low_level([features[2], features[3]], lesion_probs)
            grade_in = torch.cat([high["fused"], low_desc], dim=1)
            low_map = gates[0]
        else:
            grade_in = high["fused"]
            low_map = torch.ones_like(features[2][:, :1])
        grade_logits = self.grade_head(grade_in)

        extent = torch.cat(
            [
                lesion_probs.mean(dim=(2, 3)),
                lesion_probs.amax(dim=(2, 3)),
                torch.log1p(100 * high["lesion_mass"]),
            ],
            dim=1,
        )
        lesion_grade_logits = self.lesion_grade_head(torch.cat([high["lesion_tokens"].flatten(1), extent], dim=1))
        return ModelOutput(
            lesion_logits=lesion_logits,
            grade_logits=grade_logits,
            lesion_grade_logits=lesion_grade_logits,
            attention=high["attention"],
            low_level_attention=low_map,
            token_weights=high["token_weights"],
            pooled=high["pooled"],
        )

    def encoder_parameters(self) -> list[nn.Parameter]:
        return list(self.encoder.parameters())

    def head_parameters(self) -> list[nn.Parameter]:
        encoder_ids = {id(p) for p in self.encoder.parameters()}
        return [p for p in self.parameters() if id(p) not in encoder_ids]

    def freeze_encoder(self) -> None:
        for p in self.encoder.parameters():
            p.requires_grad_(False)

    @torch.inference_mode()
    def predict(self, images: torch.Tensor) -> ModelOutput:
        """Forward in eval mode without autograd."""
        self.eval()
        return self(images)


def upsample_attention(attention: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """An attention map resized to ``size`` and rescaled to [0, 1] per image, for display."""
    up = F.interpolate(attention, size=size, mode="bilinear", align_corners=False)
    lo = up.amin(dim=(2, 3), keepdim=True)
    hi = up.amax(dim=(2, 3), keepdim=True)
    return (up - lo) / (hi - lo + 1e-12)
