"""Evaluation of a model on a labelled dataset: grade metrics, per-lesion AUPR and Dice."""

from __future__ import annotations

import numpy as np
import torch
from torch.utils.data import DataLoader
from tqdm import tqdm

from drgnet.metrics import LesionAccumulator, grade_metrics, mean_lesion, normalised_grade_entropy
from drgnet.model import DRGNet


@torch.inference_mode()
def collect_predictions(
    model: DRGNet,
    loader: DataLoader,
    progress: bool = False,
    lesions: LesionAccumulator | None = None,
    device: str | torch.device = "cpu",
):
    """Run the model over a loader; returns (true grades, grade probabilities), feeding ``lesions`` on the way."""
    model.eval()
    grades, probs = [], []
    for batch in tqdm(loader, desc="evaluate", leave=False, disable=not progress):
        out = model(batch["image"].to(device, non_blocking=True))
        probs.append(torch.softmax(out.grade_logits.float(), dim=1).cpu().numpy())
        grades.append(batch["grade"].numpy())
        if lesions is not None:
            lesion_probs = torch.sigmoid(out.lesion_logits.float()).cpu().numpy()
            targets = batch["masks"].numpy()
            valid = batch["mask_weights"].numpy() > 0
            for i in range(len(lesion_probs)):
                lesions.add(lesion_probs[i], targets[i], valid[i])
    return np.concatenate(grades), np.concatenate(probs)


def evaluate(
    model: DRGNet, loader: DataLoader, progress: bool = False, device: str | torch.device = "cpu"
) -> dict[str, object]:
    """Grade metrics on images with a grade, lesion metrics on annotated pixels, and the mean normalised grade
    entropy of all images (``grade_entropy_mean``: 0 certain, 1 uniform)."""
    lesions = LesionAccumulator()
    grades, probs = collect_predictions(model, loader, progress=progress, lesions=lesions, device=device)
    known = grades >= 0
    metrics: dict[str, object] = grade_metrics(grades[known], probs[known]) if known.any() else {"n": 0}
    lesion = lesions.result()
    entropy = normalised_grade_entropy(probs)
    metrics.update(
        {
            "lesions": lesion,
            "lesion_aupr_mean": mean_lesion(lesion, "aupr"),
            "lesion_dice_mean": mean_lesion(lesion, "dice"),
            "grade_entropy_mean": float(entropy.mean()) if len(entropy) else float("nan"),
            "n_images": int(len(grades)),
        }
    )
    return metrics
