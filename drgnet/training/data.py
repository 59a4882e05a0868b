"""From dataset readers to training batches.

Each photograph is brought to the model's square input once (field-of-view crop, resize) and kept in memory;
augmentations run on every access. Pixels outside the field of view and lesions a source did not annotate get
weight 0 in ``mask_weights``, so the lesion loss ignores them.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from torch.utils.data import Dataset

from drgnet.data import Sample
from drgnet.data.preprocess import preprocess_sample
from drgnet.data.transforms import apply_transforms
from drgnet.labels import NUM_LESIONS


def sample_to_item(sample: Sample) -> dict[str, torch.Tensor]:
    """One preprocessed Sample as the tensors of a batch item (see ``drgnet.training.task``)."""
    h, w = sample.image.shape[:2]
    image = torch.from_numpy(np.ascontiguousarray(sample.image)).permute(2, 0, 1).float().div_(255.0)
    if sample.masks is not None:
        masks = torch.from_numpy(sample.masks.astype(np.float32))
    else:
        masks = torch.zeros(NUM_LESIONS, h, w)
    known = torch.tensor(sample.lesion_known, dtype=torch.float32).view(NUM_LESIONS, 1, 1)
    inside = torch.ones(1, h, w) if sample.ignore is None else torch.from_numpy(~sample.ignore).float()[None]
    return {
        "image": image,
        "masks": masks,
        "mask_weights": known * inside,
        "grade": torch.tensor(-1 if sample.grade is None else sample.grade, dtype=torch.long),
    }


class FundusDataset(Dataset):
    """A reader (or any sequence of Samples) as a torch Dataset at a fixed input size.

    Args:
        samples: A dataset reader or list of Samples at original resolution.
        size: Model input side (a multiple of 32).
        transform: An albumentations pipeline from ``drgnet.data.transforms`` (None: no augmentation).
        indices: Restrict to these positions of ``samples``.
        check_fundus: Reject images without a field of view (see ``preprocess``).
        cache: Keep preprocessed samples in memory (each worker process keeps its own copy).
    """

    def __init__(
        self,
        samples: Sequence[Sample],
        size: int,
        transform=None,
        indices: Sequence[int] | None = None,
        check_fundus: bool = True,
        cache: bool = True,
    ) -> None:
        if size % 32:
            raise ValueError(f"input size must be a multiple of 32, got {size}")
        self.samples = samples
        self.size = size
        self.transform = transform
        self.indices = list(range(len(samples))) if indices is None else list(indices)
        self.check_fundus = check_fundus
        self._cache: dict[int, Sample] | None = {} if cache else None

    def __len__(self) -> int:
        return len(self.indices)

    def prepared(self, i: int) -> Sample:
        """The preprocessed (not augmented) Sample at position ``i``."""
        index = self.indices[i]
        if self._cache is not None and index in self._cache:
            return self._cache[index]
        sample = preprocess_sample(self.samples[index], self.size, check_fundus=self.check_fundus)
        if self._cache is not None:
            self._cache[index] = sample
        return sample

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        sample = self.prepared(i)
        if self.transform is not None:
            sample = apply_transforms(self.transform, sample)
        return sample_to_item(sample)

    @property
    def grades(self) -> list[int | None]:
        grades = getattr(self.samples, "grades", None)
        if grades is None:
            grades = [s.grade for s in self.samples]
        return [grades[i] for i in self.indices]


def balanced_weights(grades: Sequence[int | None]) -> torch.Tensor:
    """Per-sample weights giving each present grade the same total weight (for a WeightedRandomSampler)."""
    keys = [-1 if g is None else g for g in grades]
    counts = {k: keys.count(k) for k in set(keys)}
    return torch.tensor([1.0 / counts[k] for k in keys], dtype=torch.double)
