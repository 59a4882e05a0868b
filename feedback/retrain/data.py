"""What retraining learns from: corrected photographs with their weak labels, and replayed earlier data.

A batch of :func:`mixed_batches` has the keys of :mod:`drgnet.training.task` plus ``sample_weight``,
``soft_grade``, ``fov`` and ``corrected`` (1 for a corrected photograph, 0 for replayed data).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from sqlalchemy.orm import Session
from torch.utils.data import DataLoader, Dataset, RandomSampler

from db import repository
from db.artifacts import artifact_store
from drgnet.data.preprocess import preprocess
from drgnet.data.readers import open_dataset
from drgnet.labels import NUM_GRADES, NUM_LESIONS
from drgnet.training.data import FundusDataset
from drgnet.training.engine import forever
from feedback.maps import read_rgb
from feedback.weak_labels import WeakLabel, collect_weak_labels

Progress = Callable[[float, str], None]
Batch = dict[str, torch.Tensor]

#: The keys every batch item of this module has, corrected or replayed.
BATCH_KEYS = ("image", "masks", "mask_weights", "fov", "grade", "sample_weight", "soft_grade", "corrected")


def in_correction_holdout(sha256: str, fraction: float) -> bool:
    """Whether a corrected photograph belongs to the correction hold-out (the first ``fraction`` of hash space)."""
    return fraction > 0 and int(sha256[:8], 16) / 16**8 < fraction


@dataclass
class CorrectedImage:
    """A corrected photograph with its weak label, both at the photograph's resolution."""

    image: np.ndarray
    label: WeakLabel
    sha256: str = ""
    source: str | None = None  # camera / site, to check the hold-out has healthy photographs of it


class CorrectionDataset(Dataset):
    """Corrected photographs as batch items (``drgnet.training.task`` keys plus ``sample_weight``, ``soft_grade``
    and ``corrected`` = 1). Ignored pixels and pixels outside the field of view get ``mask_weights`` 0."""

    def __init__(self, items: Sequence[CorrectedImage], size: int, flip: bool = False, seed: int = 0) -> None:
        self.items = list(items)
        self.size = size
        self.flip = flip
        self._rng = np.random.default_rng(seed)
        self._cache: dict[int, dict[str, torch.Tensor]] = {}

    def __len__(self) -> int:
        return len(self.items)

    def prepared(self, i: int) -> dict[str, torch.Tensor]:
        if i not in self._cache:
            item = self.items[i]
            label = item.label
            stack = np.concatenate([label.masks, label.supervised.astype(np.uint8)])
            pre = preprocess(item.image, self.size, source=f"image {label.image_id}", masks=stack, check_fundus=False)
            masks = torch.from_numpy(pre.masks[:NUM_LESIONS].astype(np.float32))
            weights = torch.from_numpy(pre.masks[NUM_LESIONS:].astype(np.float32)) * torch.from_numpy(pre.fov_mask)
            self._cache[i] = {
                "image": torch.from_numpy(pre.image).permute(2, 0, 1).float().div_(255.0),
                "masks": masks,
                "mask_weights": weights.float(),
                "fov": torch.from_numpy(pre.fov_mask).float(),
                "grade": torch.tensor(label.grade, dtype=torch.long),
                "sample_weight": torch.tensor(label.sample_weight, dtype=torch.float32),
                "soft_grade": torch.from_numpy(np.asarray(label.soft_grade, np.float32)),
                "corrected": torch.tensor(1.0),
            }
        return self._cache[i]

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        item = dict(self.prepared(i))
        if self.flip and self._rng.random() < 0.5:
            for key in ("image", "masks", "mask_weights", "fov"):
                item[key] = item[key].flip(-1)
        return item


class ReplayDataset(Dataset):
    """Earlier labelled training data (a ``FundusDataset``) with the keys of :class:`CorrectionDataset`."""

    def __init__(self, base: Dataset) -> None:
        self.base = base

    def __len__(self) -> int:
        return len(self.base)  # type: ignore[arg-type]

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        item = dict(self.base[i])
        grade = int(item["grade"])
        soft = torch.zeros(NUM_GRADES)
        if grade >= 0:
            soft[grade] = 1.0
        item["sample_weight"] = torch.tensor(1.0)
        item["soft_grade"] = soft
        item["corrected"] = torch.tensor(0.0)
        item["fov"] = (item["mask_weights"].amax(dim=0) > 0).float()  # only corrected images use it
        return item


def open_labelled(path: str, layout: str, size: int, transform: Any = None) -> Dataset:
    """A labelled dataset folder as a ``FundusDataset`` at the model's input size."""
    return FundusDataset(open_dataset(path, layout=layout), size, transform)


def sampled_batches(dataset: Dataset, batch_size: int, seed: int) -> Iterator[Batch]:
    """Endless batches drawn with replacement (a handful of corrections fills any number of steps)."""
    generator = torch.Generator().manual_seed(seed)
    sampler = RandomSampler(dataset, replacement=True, num_samples=1 << 30, generator=generator)
    return forever(DataLoader(dataset, batch_size, sampler=sampler))


def mixed_batches(
    corrections: Dataset,
    batch_size: int,
    seed: int,
    extras: Sequence[tuple[Dataset | None, int]] = (),
) -> Iterator[Batch]:
    """Batches of corrected images, each with ``n`` items of every ``(dataset, n)`` in ``extras`` appended.

    Extras with no items or ``n`` = 0 are left out (replay off, no healthy set registered). A batch of one image
    is doubled: batch norm cannot normalise a single image in training mode.
    """
    corrected = sampled_batches(corrections, min(batch_size, len(corrections)), seed)  # type: ignore[arg-type]
    streams = [
        sampled_batches(dataset, n, seed + i)
        for i, (dataset, n) in enumerate(extras, start=1)
        if dataset is not None and n > 0 and len(dataset)  # type: ignore[arg-type]
    ]
    for batch in corrected:
        for stream in streams:
            extra = next(stream)
            batch = {k: torch.cat([batch[k], extra[k].to(batch[k].dtype)]) for k in BATCH_KEYS}
        batch = {k: batch[k] for k in BATCH_KEYS}
        if batch["image"].shape[0] < 2:
            batch = {k: torch.cat([v, v]) for k, v in batch.items()}
        yield batch


def load_corrections(
    session: Session, data_dir: str | Path | None, tolerance_px: int, progress: Progress | None = None
) -> tuple[list[CorrectedImage], dict[int, float]]:
    """Every corrected image of the database with its weak label, and the annotators' reliability weights."""
    labels, weights = collect_weak_labels(session, artifact_store(data_dir), tolerance_px=tolerance_px)
    items = []
    for i, label in enumerate(labels):
        image = repository.get_image(session, label.image_id)  # collect_weak_labels found it in this transaction
        items.append(CorrectedImage(read_rgb(image, data_dir), label, image.sha256, image.source))
        if progress is not None:
            progress((i + 1) / len(labels), f"reading corrections {i + 1}/{len(labels)}")
    return items, weights
