"""Training views of labelled photographs: global views for the grade, high-resolution crops for the lesions.

A median microaneurysm spans about 0.5% of the field of view's diameter: one pixel at a 224 px global view. Lesion
maps are therefore made on the *lesion view* (the FOV square resampled to ``ModelConfig.lesion_fov_px``, cut into
tiles of the input size: :mod:`drgnet.tiling`), and training must show the network that scale. Each photograph
gives one global view (the whole FOV at the input size, with its grade and masks) and ``crops_per_global`` crops
of the input size from its lesion view, a share of them centred on an annotated lesion pixel so that rare small
lesions are seen. A crop keeps the lesion masks but not the grade: a corner of a DR photograph need not show DR,
so its grade is -1 (the grade losses skip it).

Several sources mix in one dataset (:class:`ViewSource`): each has a draw weight per photograph (oversampling four
real photographs among hundreds of synthetic ones), and may give a grade to photographs its reader leaves
ungraded (healthy real eyes: grade 0; their lesion masks stay unknown, so the lesion loss ignores them rather
than teaching "no lesion") or a lower bound on it (IDRiD's lesion set: every photograph shows DR).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch.utils.data import Dataset

from drgnet.data import Sample
from drgnet.data.preprocess import preprocess_sample
from drgnet.data.transforms import apply_transforms
from drgnet.training.data import sample_to_item

CROP_BALANCES = ("pixel", "class")


@dataclass
class ViewSource:
    """Photographs that train together, and how.

    Attributes:
        samples: A dataset reader or list of Samples at original resolution.
        weight: Draw weight of each of its photographs (1: as often as any other photograph).
        grade: Grade of the photographs that have none (None: they stay ungraded).
        min_grade: For ungraded photographs known to show DR: the grade head learns P(grade >= min_grade).
        name: For messages.
    """

    samples: Sequence[Sample]
    weight: float = 1.0
    grade: int | None = None
    min_grade: int = 0
    name: str = ""


class Subset(Sequence[Sample]):
    """Some positions of a reader, read lazily (photographs stay on disk until a view is first made)."""

    def __init__(self, samples: Sequence[Sample], indices: Sequence[int]) -> None:
        self.samples, self.indices = samples, list(indices)

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, i: int) -> Sample:  # type: ignore[override]
        return self.samples[self.indices[i]]

    @property
    def grades(self) -> list[int | None]:
        grades = getattr(self.samples, "grades", None)
        if grades is None:
            return [self.samples[i].grade for i in self.indices]
        return [grades[i] for i in self.indices]


def lesion_crop_box(
    lesion_pixels: np.ndarray | Sequence[np.ndarray],
    inside_pixels: np.ndarray,
    side: int,
    size: int,
    lesion_first: bool,
    rng,
) -> tuple[int, int]:
    """Top-left corner ``(y, x)`` of a ``size`` crop of a ``side`` square view.

    Args:
        lesion_pixels: Flat indices of annotated lesion pixels of the view, or several such arrays (one per lesion
            class): then a non-empty one is chosen first, each equally likely, and a pixel of it after, so a class
            with few pixels (microaneurysms) centres as many crops as one with many (exudates).
        inside_pixels: Flat indices of pixels inside the field of view (where a plain crop may be centred).
        side: The view's side.
        size: The crop's side (at most ``side``).
        lesion_first: Centre the crop on a lesion pixel when there is one.
        rng: A ``numpy.random.Generator``.

    The crop is centred on the chosen pixel and shifted to stay inside the view, so it always contains that pixel.
    """
    if isinstance(lesion_pixels, np.ndarray):
        pool = lesion_pixels if lesion_first and len(lesion_pixels) else inside_pixels
    else:
        pools = [p for p in lesion_pixels if len(p)]
        pool = pools[rng.integers(len(pools))] if lesion_first and pools else inside_pixels
    if len(pool):
        cy, cx = divmod(int(pool[rng.integers(len(pool))]), side)
    else:
        cy, cx = (int(v) for v in rng.integers(side, size=2))
    y = min(max(cy - size // 2, 0), side - size)
    x = min(max(cx - size // 2, 0), side - size)
    return y, x


def crop_sample(sample: Sample, y: int, x: int, size: int) -> Sample:
    """The ``size x size`` part of a preprocessed Sample at ``(y, x)``, without its grade."""
    cut = (slice(y, y + size), slice(x, x + size))
    return Sample(
        image=np.ascontiguousarray(sample.image[cut]),
        name=f"{sample.name}@{y},{x}",
        source=sample.source,
        grade=None,
        masks=None if sample.masks is None else np.ascontiguousarray(sample.masks[(slice(None), *cut)]),
        lesion_known=sample.lesion_known,
        ignore=None if sample.ignore is None else sample.ignore[cut],
        path=sample.path,
        meta=dict(sample.meta),
    )


@dataclass
class _LesionView:
    sample: Sample
    lesion_pixels: np.ndarray  # flat indices of pixels of any known lesion
    class_pixels: list[np.ndarray]  # the same, per known lesion class present
    inside_pixels: np.ndarray

    def centres(self, balance: str) -> np.ndarray | list[np.ndarray]:
        """Where a lesion-centred crop may be centred: any lesion pixel ("pixel"), or per class ("class")."""
        return self.class_pixels if balance == "class" else self.lesion_pixels


class HighResViews(Dataset):
    """Global views and lesion-view crops of every photograph of several sources, as batch items.

    Position ``p * (1 + crops_per_global)`` is photograph ``p``'s global view; the positions after it are its
    crops (each drawn afresh on every access). Items carry ``grade_min`` beside the keys of
    :func:`drgnet.training.data.sample_to_item`. Preprocessed views are cached in memory (a 1024 px lesion view
    with its masks and pixel indices takes about 12 MB).

    Args:
        sources: The photographs and their draw weights.
        size: Model input side (a multiple of 32).
        lesion_fov_px: Side of the lesion view (at least ``size``).
        crops_per_global: Crops per global view.
        lesion_crop_fraction: Share of crops centred on a lesion pixel.
        lesion_crop_balance: How a lesion-centred crop picks its centre: "pixel" (any lesion pixel, each equally
            likely: large lesions centre most crops) or "class" (a lesion class present in the view first, each
            equally likely, then a pixel of it).
        transform: Augmentation applied to every view (None: none).
        grade_balanced: Draw weights balance the grades of the global views (see :meth:`sampling_weights`).
        check_fundus: Reject images without a field of view.
    """

    def __init__(
        self,
        sources: Sequence[ViewSource],
        size: int,
        lesion_fov_px: int,
        crops_per_global: int = 0,
        lesion_crop_fraction: float = 0.5,
        lesion_crop_balance: str = "pixel",
        transform=None,
        grade_balanced: bool = True,
        check_fundus: bool = True,
    ) -> None:
        if size % 32:
            raise ValueError(f"input size must be a multiple of 32, got {size}")
        if crops_per_global and lesion_fov_px < size:
            raise ValueError(f"lesion_fov_px {lesion_fov_px} is smaller than the input size {size}: nothing to crop")
        if not 0.0 <= lesion_crop_fraction <= 1.0:
            raise ValueError(f"lesion_crop_fraction must lie in [0, 1], got {lesion_crop_fraction}")
        self.sources = list(sources)
        self.size, self.lesion_fov_px = size, lesion_fov_px
        self.views = 1 + max(0, int(crops_per_global))
        if lesion_crop_balance not in CROP_BALANCES:
            choices = ", ".join(CROP_BALANCES)
            raise ValueError(f"lesion_crop_balance must be one of {choices}, got {lesion_crop_balance!r}")
        self.lesion_crop_fraction, self.lesion_crop_balance = lesion_crop_fraction, lesion_crop_balance
        self.transform, self.grade_balanced, self.check_fundus = transform, grade_balanced, check_fundus
        self.photos = [(s, i) for s, src in enumerate(self.sources) for i in range(len(src.samples))]
        if not self.photos:
            raise ValueError("no training photographs: every source is empty")
        self._global: dict[int, Sample] = {}
        self._grades: list[tuple[int | None, int]] | None = None
        self._lesion: dict[int, _LesionView] = {}

    def __len__(self) -> int:
        return len(self.photos) * self.views

    def photo_grade(self, photo: int) -> tuple[int | None, int]:
        """Grade (or None) and lower bound of photograph ``photo``'s grade, after its source's rules."""
        if self._grades is None:
            # Read once: a reader's grades come from its label file, a plain list's from loading each photograph.
            self._grades = []
            for source in self.sources:
                grades = getattr(source.samples, "grades", None)
                if grades is None:
                    grades = [sample.grade for sample in source.samples]
                for grade in grades:
                    grade = source.grade if grade is None else grade
                    self._grades.append((grade, source.min_grade if grade is None else 0))
        return self._grades[photo]

    @property
    def grades(self) -> list[int | None]:
        """Grade of every position: the photograph's for global views, None for crops."""
        return [self.photo_grade(p)[0] if v == 0 else None for p in range(len(self.photos)) for v in range(self.views)]

    def sampling_weights(self) -> torch.Tensor:
        """Draw weight of every position: its source's weight, times a factor that gives each grade present
        among the photographs the same total weight (``grade_balanced``; ungraded photographs keep 1)."""
        grades = [self.photo_grade(p)[0] for p in range(len(self.photos))]
        graded = [g for g in grades if g is not None]
        counts = {g: graded.count(g) for g in set(graded)}
        weights = []
        for p, grade in enumerate(grades):
            w = self.sources[self.photos[p][0]].weight
            if self.grade_balanced and grade is not None:
                w *= len(graded) / (len(counts) * counts[grade])
            weights.extend([w] * self.views)
        return torch.tensor(weights, dtype=torch.double)

    def global_view(self, photo: int) -> Sample:
        """The photograph's whole FOV at the input size, graded by its source's rules (cached, not augmented)."""
        if photo not in self._global:
            s, i = self.photos[photo]
            sample = preprocess_sample(self.sources[s].samples[i], self.size, check_fundus=self.check_fundus)
            sample.grade = self.photo_grade(photo)[0]
            self._global[photo] = sample
        return self._global[photo]

    def lesion_view(self, photo: int) -> _LesionView:
        """The photograph's FOV square at ``lesion_fov_px`` with where lesions and the FOV are (cached)."""
        if photo not in self._lesion:
            s, i = self.photos[photo]
            view = preprocess_sample(self.sources[s].samples[i], self.lesion_fov_px, check_fundus=self.check_fundus)
            inside = np.ones(view.image.shape[:2], bool) if view.ignore is None else ~view.ignore
            lesions = np.zeros_like(inside)
            per_class = []
            if view.masks is not None:
                for mask, known in zip(view.masks, view.lesion_known, strict=True):
                    if known:
                        hit = (mask > 0) & inside
                        lesions |= hit
                        # int32 indices: half the memory of int64 (a 1024 px view has ~0.8 M pixels inside).
                        pixels = np.flatnonzero(hit).astype(np.int32)
                        if len(pixels):
                            per_class.append(pixels)
            self._lesion[photo] = _LesionView(
                view, np.flatnonzero(lesions).astype(np.int32), per_class, np.flatnonzero(inside).astype(np.int32)
            )
        return self._lesion[photo]

    def crop(self, photo: int, rng) -> Sample:
        """A fresh crop of the photograph's lesion view (lesion-centred with probability ``lesion_crop_fraction``)."""
        view = self.lesion_view(photo)
        lesion_first = bool(rng.random() < self.lesion_crop_fraction)
        centres = view.centres(self.lesion_crop_balance)
        y, x = lesion_crop_box(centres, view.inside_pixels, self.lesion_fov_px, self.size, lesion_first, rng)
        return crop_sample(view.sample, y, x, self.size)

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        photo, view = divmod(int(index), self.views)
        if view == 0:
            sample, grade_min = self.global_view(photo), self.photo_grade(photo)[1]
        else:
            # Seeded from torch, so a seeded run draws the same crops (each loader worker has its own torch seed).
            rng = np.random.default_rng(int(torch.randint(0, 2**31 - 1, (1,))))
            sample, grade_min = self.crop(photo, rng), 0
        if self.transform is not None:
            sample = apply_transforms(self.transform, sample)
        item = sample_to_item(sample)
        item["grade_min"] = torch.tensor(grade_min, dtype=torch.long)
        return item
