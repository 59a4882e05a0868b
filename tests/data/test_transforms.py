"""Training augmentations keep photograph, lesion masks and ignore mask aligned; evaluation changes nothing."""

from __future__ import annotations

import warnings

import albumentations as A
import cv2
import numpy as np
import pytest

from drgnet.data.sample import Sample
from drgnet.data.transforms import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    STRENGTHS,
    apply_transforms,
    eval_transforms,
    train_transforms,
)

SIZE = 96


def _sample(ignore: np.ndarray | None = None) -> Sample:
    """Dark fundus-like disc with two white squares, each marked in its own lesion mask."""
    image = np.zeros((SIZE, SIZE, 3), np.uint8)
    cv2.circle(image, (SIZE // 2, SIZE // 2), SIZE // 2 - 2, (90, 40, 20), -1)
    masks = np.zeros((4, SIZE, SIZE), np.uint8)
    image[20:32, 50:62] = 255
    masks[1, 20:32, 50:62] = 1
    image[60:66, 30:36] = 255
    masks[2, 60:66, 30:36] = 1
    return Sample(
        image=image,
        name="squares",
        source="test",
        grade=3,
        masks=masks,
        lesion_known=(False, True, True, False),
        ignore=ignore,
        meta={"k": 1},
    )


def test_construction_emits_no_warnings() -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        for strength in STRENGTHS:
            train_transforms(SIZE, strength, seed=0)
        eval_transforms(SIZE)


def test_unknown_strength_and_bad_size() -> None:
    with pytest.raises(ValueError, match="strength"):
        train_transforms(SIZE, "extreme")
    with pytest.raises(ValueError, match="size"):
        eval_transforms(2)


@pytest.mark.parametrize("strength", STRENGTHS)
def test_masks_stay_on_the_bright_squares(strength: str) -> None:
    sample = _sample()
    transform = train_transforms(SIZE, strength, seed=123)
    for _ in range(12):
        out = apply_transforms(transform, sample)
        assert out.image.shape == (SIZE, SIZE, 3) and out.image.dtype == np.uint8
        assert out.masks is not None and out.masks.shape == (4, SIZE, SIZE)
        grey = out.image.astype(np.float32).mean(axis=2)
        for channel in (1, 2):
            lesion = out.masks[channel].astype(bool)
            if not lesion.any():  # shifted out of the frame
                continue
            # Inside the mark: the bright square; all around it, the dark disc.
            assert grey[lesion].mean() > 1.5 * grey[~lesion].mean() + 20
            ys, xs = np.nonzero(lesion)
            bright = np.zeros_like(lesion)
            bright[max(ys.min() - 3, 0) : ys.max() + 4, max(xs.min() - 3, 0) : xs.max() + 4] = True
            bright &= grey > (grey[lesion].mean() + np.median(grey)) / 2
            by, bx = np.nonzero(bright)
            assert abs(by.mean() - ys.mean()) < 1.5 and abs(bx.mean() - xs.mean()) < 1.5


def test_masks_stay_binary_and_metadata_is_kept() -> None:
    sample = _sample()
    transform = train_transforms(SIZE, "strong", seed=5)
    for _ in range(5):
        out = apply_transforms(transform, sample)
        assert set(np.unique(out.masks)) <= {0, 1}
        assert out.ignore is not None and out.ignore.dtype == bool
        assert (out.name, out.source, out.grade) == ("squares", "test", 3)
        assert out.lesion_known == sample.lesion_known and out.meta == {"k": 1}
        assert out.meta is not sample.meta


def test_seed_makes_augmentation_reproducible() -> None:
    sample = _sample()
    runs = []
    for seed in (7, 7, 8):
        transform = train_transforms(SIZE, "default", seed=seed)
        runs.append([apply_transforms(transform, sample) for _ in range(4)])
    for a, b in zip(runs[0], runs[1], strict=True):
        assert np.array_equal(a.image, b.image) and np.array_equal(a.masks, b.masks)
        assert np.array_equal(a.ignore, b.ignore)
    assert any(not np.array_equal(a.image, c.image) for a, c in zip(runs[0], runs[2], strict=True))


def test_eval_transforms_is_identity_at_model_size() -> None:
    sample = _sample()
    out = apply_transforms(eval_transforms(SIZE), sample)
    assert np.array_equal(out.image, sample.image) and np.array_equal(out.masks, sample.masks)
    assert out.ignore is not None and not out.ignore.any()


def test_eval_transforms_resizes_other_sizes() -> None:
    out = apply_transforms(eval_transforms(48), _sample())
    assert out.image.shape == (48, 48, 3) and out.masks.shape == (4, 48, 48) and out.ignore.shape == (48, 48)
    assert set(np.unique(out.masks)) <= {0, 1}


def test_rotation_padding_is_ignored() -> None:
    sample = _sample()
    rotate = A.Compose([A.Affine(rotate=(45, 45), fill=0, fill_mask=0, p=1.0)], strict=True)
    out = apply_transforms(rotate, sample)
    assert out.ignore[0, 0] and out.ignore[0, -1] and out.ignore[-1, 0] and out.ignore[-1, -1]
    assert not out.ignore[SIZE // 2, SIZE // 2]
    assert 0.1 < out.ignore.mean() < 0.25  # the four corner triangles of a square turned by 45 degrees


def test_train_padding_is_ignored_and_never_a_lesion() -> None:
    # A photograph that is all lesion: after augmentation, each pixel is either still lesion or is padding
    # brought in by the geometry, which must be ignored.
    full = Sample(
        image=np.full((SIZE, SIZE, 3), 150, np.uint8),
        name="full",
        source="test",
        masks=np.ones((4, SIZE, SIZE), np.uint8),
        lesion_known=(True,) * 4,
    )
    transform = train_transforms(SIZE, "strong", seed=1)
    padded = 0
    for _ in range(10):
        out = apply_transforms(transform, full)
        assert np.array_equal(out.masks[0] == 0, out.ignore)
        padded += int(out.ignore.any())
    assert padded >= 3


def test_existing_ignore_travels_with_the_geometry() -> None:
    ignore = np.zeros((SIZE, SIZE), bool)
    ignore[20:32, 50:62] = True  # same place as the HE square
    sample = _sample(ignore=ignore)
    transform = train_transforms(SIZE, "strong", seed=3)
    for _ in range(6):
        out = apply_transforms(transform, sample)
        he = out.masks[1].astype(bool)
        assert out.ignore[he].all()


def test_sample_without_masks() -> None:
    sample = Sample(image=_sample().image, name="graded", source="test", grade=1)
    out = apply_transforms(train_transforms(SIZE, seed=0), sample)
    assert out.masks is None and out.ignore is not None and out.grade == 1


def test_normalisation_constants() -> None:
    assert len(IMAGENET_MEAN) == len(IMAGENET_STD) == 3
    assert all(0 < m < 1 for m in IMAGENET_MEAN) and all(0 < s < 1 for s in IMAGENET_STD)
