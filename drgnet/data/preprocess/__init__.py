"""Load fundus photographs, find the field of view and bring them to the model's square input.

Everything here is numpy / OpenCV / Pillow / scikit-image: the web app and the screening workers use it
without torch.

The pipeline for one photograph::

    image = load_rgb("scan.jpg")                 # any format Pillow reads, EXIF orientation applied
    pre = preprocess(image, 512, source="scan.jpg")
    pre.image, pre.fov_mask                     # (512, 512, 3) uint8, (512, 512) bool
    full = pre.unproject_mask(predicted_map)     # back at the photograph's resolution

``preprocess`` finds the circular field of view (FOV), crops the square around it (padding with black where
the circle is clipped by the photograph's edge) and resizes, so the retina always sits at the same place and
scale whatever camera took it.

Modules: ``decode`` (load_rgb, to_rgb_uint8), ``fov`` (find_fov, FieldOfView, NotFundusError; detection in
``_fov_detect``, ``fundus_check`` and ``_fov_geometry``), ``crop`` (crop_to_fov, pad_to_square), ``pipeline``
(preprocess, preprocess_sample, Preprocessed).
"""

from __future__ import annotations

from drgnet.data.preprocess.crop import FOV_MARGIN, crop_to_fov, pad_to_square
from drgnet.data.preprocess.decode import MAX_IMAGE_PIXELS, load_rgb, to_rgb_uint8
from drgnet.data.preprocess.fov import FieldOfView, NotFundusError, find_fov
from drgnet.data.preprocess.pipeline import Preprocessed, preprocess, preprocess_sample

__all__ = [
    "FOV_MARGIN",
    "MAX_IMAGE_PIXELS",
    "FieldOfView",
    "NotFundusError",
    "Preprocessed",
    "crop_to_fov",
    "find_fov",
    "load_rgb",
    "pad_to_square",
    "preprocess",
    "preprocess_sample",
    "to_rgb_uint8",
]
