"""Augmentations for training and the fixed transform for evaluation (albumentations 2.x).

Geometric augmentations move the photograph, its lesion masks and its ignore mask together; photometric ones
touch only the photograph and mimic what changes between fundus cameras and visits: exposure, contrast,
gamma, colour cast, focus, sensor noise and JPEG compression.

The ignore mask travels through the geometry inverted, as a "valid" mask that is 1 where a pixel label
counts. Pixels that rotation or shift bring in from outside the photograph are filled with 0 in every mask,
so they come out as "no lesion" and ignored.
"""

from __future__ import annotations

import os
from dataclasses import replace

# albumentations asks PyPI for a newer version at import time; a screening site may be offline, and a
# clinical tool should not phone home. Set before the first import of albumentations anywhere.
os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")

import albumentations as A  # noqa: E402
import cv2  # noqa: E402
import numpy as np  # noqa: E402

from drgnet.data.sample import Sample  # noqa: E402
from drgnet.labels import NUM_LESIONS  # noqa: E402

#: ImageNet channel statistics (RGB, for pixels scaled to [0, 1]) the pretrained encoders expect.
IMAGENET_MEAN: tuple[float, float, float] = (0.485, 0.456, 0.406)
IMAGENET_STD: tuple[float, float, float] = (0.229, 0.224, 0.225)

#: Augmentation strengths accepted by ``train_transforms``.
STRENGTHS: tuple[str, ...] = ("light", "default", "strong")


def _by_strength(**columns: tuple[object, object, object]) -> dict[str, dict[str, object]]:
    # Written a parameter a row so that the three strengths of one range stand side by side.
    return {strength: {name: values[i] for name, values in columns.items()} for i, strength in enumerate(STRENGTHS)}


# Per strength: geometric and photometric ranges. Scale stays close to 1 from below so that a microaneurysm
# of two or three pixels at model resolution is never shrunk away.
_PARAMS: dict[str, dict[str, object]] = _by_strength(
    rotate=(15.0, 30.0, 180.0),
    scale=((0.95, 1.05), (0.9, 1.1), (0.85, 1.2)),
    translate=(0.02, 0.04, 0.06),
    p_affine=(0.5, 0.7, 0.9),
    brightness=(0.1, 0.2, 0.3),
    contrast=(0.1, 0.2, 0.3),
    gamma=((90, 110), (80, 125), (70, 140)),
    hue=(3, 6, 10),
    saturation=(8, 15, 25),
    colour_shift=(5, 10, 20),
    blur_sigma=((0.3, 0.7), (0.3, 1.2), (0.3, 1.8)),
    noise_std=((0.005, 0.015), (0.01, 0.03), (0.01, 0.05)),
    jpeg=((75, 100), (50, 100), (30, 100)),
    p_photometric=(0.3, 0.4, 0.5),
)


def train_transforms(size: int, strength: str = "default", seed: int | None = None) -> A.Compose:
    """Joint augmentation of a preprocessed photograph and its masks for training.

    Geometry (photograph and masks together): resize to ``size`` if needed, horizontal flip (left and right
    eyes mirror each other), rotation about the centre, small scale and shift. Masks use nearest
    interpolation and are filled with 0 where the geometry brings in pixels from outside; see
    ``apply_transforms`` for how those become ignored. Photometry (photograph only): brightness / contrast,
    gamma, hue / saturation, colour cast, blur, sensor noise and JPEG compression.

    Args:
        size: Side of the square model input.
        strength: One of ``STRENGTHS``: ``"strong"`` allows any rotation angle and larger camera shifts.
        seed: Seed of the pipeline's random generator, for reproducible augmentation.

    Returns:
        A Compose to call as ``transform(image=..., masks=[...])`` or through ``apply_transforms``.
    """
    if strength not in _PARAMS:
        raise ValueError(f"unknown augmentation strength {strength!r}; expected one of {', '.join(STRENGTHS)}")
    size = _check_size(size)
    p = _PARAMS[strength]
    p_photo = float(p["p_photometric"])
    geometric = [
        A.Resize(size, size, interpolation=cv2.INTER_AREA, mask_interpolation=cv2.INTER_NEAREST),
        A.HorizontalFlip(p=0.5),
        A.Affine(
            rotate=(-p["rotate"], p["rotate"]),
            scale=p["scale"],
            translate_percent=(-p["translate"], p["translate"]),
            interpolation=cv2.INTER_LINEAR,
            mask_interpolation=cv2.INTER_NEAREST,
            border_mode=cv2.BORDER_CONSTANT,
            fill=0,
            fill_mask=0,
            p=p["p_affine"],
        ),
    ]
    photometric = [
        A.RandomBrightnessContrast(
            brightness_limit=p["brightness"], contrast_limit=p["contrast"], p=min(1.0, 2 * p_photo)
        ),
        A.RandomGamma(gamma_limit=p["gamma"], p=p_photo),
        A.HueSaturationValue(hue_shift_limit=p["hue"], sat_shift_limit=p["saturation"], val_shift_limit=0, p=p_photo),
        A.RGBShift(
            r_shift_limit=p["colour_shift"],
            g_shift_limit=p["colour_shift"],
            b_shift_limit=p["colour_shift"],
            p=p_photo / 2,
        ),
        A.GaussianBlur(blur_limit=0, sigma_limit=p["blur_sigma"], p=p_photo / 2),
        A.GaussNoise(std_range=p["noise_std"], p=p_photo / 2),
        A.ImageCompression(quality_range=p["jpeg"], p=p_photo),
    ]
    return A.Compose(geometric + photometric, seed=seed, strict=True)


def eval_transforms(size: int) -> A.Compose:
    """The evaluation transform: only a resize to ``size`` (identity for an already preprocessed photograph)."""
    size = _check_size(size)
    return A.Compose(
        [A.Resize(size, size, interpolation=cv2.INTER_AREA, mask_interpolation=cv2.INTER_NEAREST)],
        strict=True,
    )


def apply_transforms(transform: A.Compose, sample: Sample) -> Sample:
    """Run a Compose on a Sample's photograph, lesion masks and ignore mask together.

    Args:
        transform: E.g. ``train_transforms(512)`` or ``eval_transforms(512)``.
        sample: The (usually preprocessed) sample.

    Returns:
        A new Sample with the same name, source, grade, lesion flags, path and meta. Its ``ignore`` mask is
        always an array: True where the input ignored a pixel and where the geometry brought in pixels from
        outside the photograph.
    """
    h, w = sample.image.shape[:2]
    valid = np.ones((h, w), np.uint8) if sample.ignore is None else (~sample.ignore).astype(np.uint8)
    masks = [valid]
    if sample.masks is not None:
        masks.extend(np.ascontiguousarray(m) for m in sample.masks)
    out = transform(image=sample.image, masks=masks)
    image = np.ascontiguousarray(out["image"])
    out_masks = [np.asarray(m) for m in out["masks"]]
    ignore = out_masks[0] == 0
    lesion_masks = np.stack(out_masks[1:]).astype(np.uint8) if sample.masks is not None else None
    if lesion_masks is not None and len(lesion_masks) != NUM_LESIONS:
        raise ValueError(f"{sample.name}: transform changed the number of lesion masks")
    return replace(sample, image=image, masks=lesion_masks, ignore=ignore, meta=dict(sample.meta))


def _check_size(size: int) -> int:
    if int(size) != size or size < 8:
        raise ValueError(f"size must be an integer of at least 8 pixels, got {size!r}")
    return int(size)


__all__ = [
    "IMAGENET_MEAN",
    "IMAGENET_STD",
    "STRENGTHS",
    "apply_transforms",
    "eval_transforms",
    "train_transforms",
]
