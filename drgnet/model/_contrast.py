"""Local contrast normalisation of the network input: each pixel against its neighbourhood's mean colour.

A photograph's brightness, colour cast and uneven illumination change from camera to camera and from one side
of the field of view to the other; a lesion is a small departure from its own surroundings. Subtracting a wide
Gaussian mean of the surroundings (and amplifying what is left) removes the first and keeps the second: the
preprocessing that won the 2015 Kaggle DR challenge (B. Graham) did this once per photograph, at a blur of
about a thirtieth of the field-of-view radius. Here it is part of the network, so training, tiled inference and
ONNX export all apply it the same way.

The mean is a normalised convolution over the lit pixels only (black outside the field of view, and the edges of
a tile or crop): ``blur(x * m) / blur(m)``, so neither the rim of the field of view nor a tile's border pulls the
mean towards black. The blur runs at a quarter of the resolution (area-averaged down, bilinear back up), which is
smooth enough at these widths and keeps the cost small beside the encoder.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

#: A pixel whose brightest channel is below this counts as outside the field of view (black padding).
_LIT = 0.02
_EPS = 1e-3
_DOWN = 4


def _gaussian_kernel(sigma: float) -> torch.Tensor:
    radius = max(1, math.ceil(3 * sigma))
    t = torch.arange(-radius, radius + 1, dtype=torch.float32)
    k = torch.exp(-0.5 * (t / sigma) ** 2)
    return k / k.sum()


class LocalContrast(nn.Module):
    """``0.5 + gain * (x - local mean)``, clipped to [0, 1]; 0 outside the field of view.

    Args:
        sigma_px: Width of the Gaussian neighbourhood in input pixels (the lesion view's scale is what matters:
            16 px is about a thirtieth of the radius of a 1024 px field of view).
        gain: How much the departures from the local mean are amplified (4: a contrast of -8 grey levels, a
            typical real haemorrhage, becomes -32).
    """

    def __init__(self, sigma_px: float, gain: float = 4.0) -> None:
        super().__init__()
        if sigma_px < _DOWN:
            raise ValueError(f"local contrast sigma must be at least {_DOWN} pixels, got {sigma_px}")
        if gain <= 0:
            raise ValueError(f"local contrast gain must be positive, got {gain}")
        self.gain = float(gain)
        kernel = _gaussian_kernel(sigma_px / _DOWN)
        self.pad = kernel.numel() // 2
        # Depthwise kernels of fixed shape for the 3 colour channels and the lit mask (ONNX needs the shapes).
        self.register_buffer("kernel_x", kernel.view(1, 1, 1, -1).repeat(4, 1, 1, 1), persistent=False)
        self.register_buffer("kernel_y", kernel.view(1, 1, -1, 1).repeat(4, 1, 1, 1), persistent=False)

    def _blur(self, x: torch.Tensor) -> torch.Tensor:
        x = F.conv2d(x, self.kernel_x.to(x.dtype), padding=(0, self.pad), groups=4)
        return F.conv2d(x, self.kernel_y.to(x.dtype), padding=(self.pad, 0), groups=4)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        lit = (images.amax(dim=1, keepdim=True) > _LIT).to(images.dtype)
        small = F.avg_pool2d(torch.cat([images * lit, lit], dim=1), _DOWN)
        blurred = F.interpolate(self._blur(small), size=images.shape[-2:], mode="bilinear", align_corners=False)
        mean = blurred[:, :3] / blurred[:, 3:].clamp_min(_EPS)
        return (0.5 + self.gain * (images - mean)).clamp(0.0, 1.0) * lit
