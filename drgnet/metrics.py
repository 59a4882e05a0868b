"""Grading and segmentation metrics, in numpy.

Grade metrics follow the DR literature: quadratic weighted kappa (QWK) is the headline because grades are
ordinal; referable DR (grade >= 2) is the screening decision, so its AUC, sensitivity and specificity are
reported separately. Lesion metrics are pixel-level AUPR (area under precision-recall, robust to the extreme
imbalance of lesion pixels) and Dice at a 0.5 threshold, pooled over all evaluated pixels.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from sklearn.metrics import average_precision_score, cohen_kappa_score, f1_score, roc_auc_score

from drgnet.labels import (
    GRADE_NAMES,
    GRADES,
    LESIONS,
    NUM_GRADES,
    REFERABLE_MIN_GRADE,
    normalised_entropy,
    referable_probability,
)


def quadratic_weighted_kappa(y_true: np.ndarray, y_pred: np.ndarray) -> float:
    """Cohen's kappa with quadratic weights over the five ICDR grades (1 = perfect, 0 = chance)."""
    y_true, y_pred = np.asarray(y_true), np.asarray(y_pred)
    if len(y_true) == 0:
        return float("nan")
    if len(np.unique(np.concatenate([y_true, y_pred]))) == 1:
        return 1.0  # perfect agreement on a single grade; sklearn would divide by zero
    return float(cohen_kappa_score(y_true, y_pred, weights="quadratic", labels=list(GRADES)))


def _safe_auc(y: np.ndarray, score: np.ndarray) -> float:
    if len(np.unique(y)) < 2:
        return float("nan")
    return float(roc_auc_score(y, score))


def grade_confusion(true_grades: np.ndarray, predicted_grades: np.ndarray) -> np.ndarray:
    """Counts ``(5, 5)`` of (true, predicted) grade pairs: rows are the true grades, columns the predicted ones.

    Raises:
        ValueError: a grade outside the ICDR scale, or arrays of different lengths.
    """
    true_grades = np.asarray(true_grades, dtype=int).reshape(-1)
    predicted_grades = np.asarray(predicted_grades, dtype=int).reshape(-1)
    if len(true_grades) != len(predicted_grades):
        raise ValueError(f"{len(true_grades)} true grades but {len(predicted_grades)} predicted grades")
    both = np.concatenate([true_grades, predicted_grades])
    if len(both) and (both.min() < 0 or both.max() >= NUM_GRADES):
        raise ValueError(f"grades must be ICDR grades 0-{NUM_GRADES - 1}, got {sorted(set(both.tolist()))}")
    counts = np.zeros((NUM_GRADES, NUM_GRADES), dtype=np.int64)
    np.add.at(counts, (true_grades, predicted_grades), 1)
    return counts


def _sensitivity_specificity(referable: np.ndarray, called: np.ndarray) -> tuple[float, float]:
    """Share of referable eyes called referable, share of the others not called; NaN where there are none."""
    referable, called = np.asarray(referable, dtype=bool), np.asarray(called, dtype=bool)
    sensitivity = float(called[referable].mean()) if referable.any() else float("nan")
    specificity = float((~called[~referable]).mean()) if (~referable).any() else float("nan")
    return sensitivity, specificity


def referable_sensitivity_specificity(true_grades: np.ndarray, predicted_grades: np.ndarray) -> tuple[float, float]:
    """Sensitivity and specificity of the referral decision from graded eyes (NaN without referable / other eyes).

    The rule: an eye is referable when its grade is at least ``REFERABLE_MIN_GRADE`` (moderate NPDR), on both
    sides; a model's referable call is its predicted (most probable) grade >= ``REFERABLE_MIN_GRADE``, the call
    the app and ``drgnet screen`` show (``Prediction.referable``). :func:`grade_metrics`, which has the grade
    probabilities, calls instead at P(grade >= ``REFERABLE_MIN_GRADE``) >= ``referable_threshold``; the two differ
    only where the most probable grade and the referable probability mass disagree.
    """
    true_grades, predicted_grades = np.asarray(true_grades, dtype=int), np.asarray(predicted_grades, dtype=int)
    return _sensitivity_specificity(true_grades >= REFERABLE_MIN_GRADE, predicted_grades >= REFERABLE_MIN_GRADE)


def normalised_grade_entropy(probs: np.ndarray) -> np.ndarray:
    """:func:`drgnet.labels.normalised_entropy` of each grade distribution of ``probs`` ``(N, 5)``: ``(N,)``, 0 for
    a certain prediction, 1 for a uniform one (the uncertainty a clinician sees next to each grade)."""
    probs = np.asarray(probs, dtype=np.float64)
    if probs.ndim != 2:
        raise ValueError(f"probs must be (N, grades), got shape {probs.shape}")
    return np.array([normalised_entropy(p) for p in probs], dtype=np.float64)


def grade_metrics(y_true: np.ndarray, probs: np.ndarray, referable_threshold: float = 0.5) -> dict[str, object]:
    """All grade metrics from true grades ``(N,)`` and predicted probabilities ``(N, 5)``.

    The referable sensitivity and specificity call an eye referable when P(grade >= ``REFERABLE_MIN_GRADE``) is at
    least ``referable_threshold`` (the probabilities are at hand; :func:`referable_sensitivity_specificity` is the
    rule on grades alone).
    """
    y_true = np.asarray(y_true, dtype=int)
    probs = np.asarray(probs, dtype=np.float64)
    if probs.ndim != 2 or probs.shape != (len(y_true), len(GRADES)):
        raise ValueError(f"probs must be ({len(y_true)}, {len(GRADES)}), got {probs.shape}")
    y_pred = probs.argmax(axis=1)
    per_class_auc = {}
    for g in GRADES:
        per_class_auc[str(g)] = _safe_auc((y_true == g).astype(int), probs[:, g])
    valid_aucs = [v for v in per_class_auc.values() if not np.isnan(v)]
    ref_true = (y_true >= REFERABLE_MIN_GRADE).astype(int)
    ref_score = np.array([referable_probability(p) for p in probs], dtype=np.float64)
    sensitivity, specificity = _sensitivity_specificity(ref_true == 1, ref_score >= referable_threshold)
    return {
        "n": len(y_true),
        "accuracy": float((y_pred == y_true).mean()) if len(y_true) else float("nan"),
        "qwk": quadratic_weighted_kappa(y_true, y_pred),
        "macro_f1": float(f1_score(y_true, y_pred, labels=list(GRADES), average="macro", zero_division=0)),
        "auc_ovr": float(np.mean(valid_aucs)) if valid_aucs else float("nan"),
        "auc_per_grade": per_class_auc,
        "referable_auc": _safe_auc(ref_true, ref_score),
        "referable_sensitivity": sensitivity,
        "referable_specificity": specificity,
        "confusion": grade_confusion(y_true, y_pred).tolist(),
    }


class LesionAccumulator:
    """Pools lesion probabilities and targets over a dataset, per lesion, for AUPR and Dice.

    AUPR needs the scores themselves; to bound memory on big sets, each image contributes all its positive
    pixels and at most ``max_negatives`` randomly chosen negatives, with negatives re-weighted so that
    precision stays unbiased.
    """

    def __init__(self, max_negatives: int = 20_000, seed: int = 0) -> None:
        self.max_negatives = max_negatives
        self.rng = np.random.default_rng(seed)
        self.scores: dict[str, list[np.ndarray]] = {k: [] for k in LESIONS}
        self.labels: dict[str, list[np.ndarray]] = {k: [] for k in LESIONS}
        self.weights: dict[str, list[np.ndarray]] = {k: [] for k in LESIONS}
        self.inter = dict.fromkeys(LESIONS, 0.0)
        self.total = dict.fromkeys(LESIONS, 0.0)

    def add(self, probs: np.ndarray, targets: np.ndarray, valid: np.ndarray) -> None:
        """One image: ``probs``, ``targets``, ``valid`` each ``(4, H, W)``; invalid pixels are skipped."""
        for k, name in enumerate(LESIONS):
            v = valid[k].astype(bool)
            if not v.any():
                continue
            p = probs[k][v].astype(np.float32)
            t = targets[k][v] > 0.5
            pred = p >= 0.5
            self.inter[name] += float((pred & t).sum())
            self.total[name] += float(pred.sum() + t.sum())
            pos, neg = np.flatnonzero(t), np.flatnonzero(~t)
            w_neg = 1.0
            if len(neg) > self.max_negatives:
                w_neg = len(neg) / self.max_negatives
                neg = self.rng.choice(neg, self.max_negatives, replace=False)
            idx = np.concatenate([pos, neg])
            self.scores[name].append(p[idx])
            self.labels[name].append(t[idx])
            self.weights[name].append(np.concatenate([np.ones(len(pos)), np.full(len(neg), w_neg)]))

    def result(self) -> dict[str, dict[str, float]]:
        out = {}
        for name in LESIONS:
            if not self.labels[name]:
                out[name] = {"aupr": float("nan"), "dice": float("nan"), "positives": 0}
                continue
            y = np.concatenate(self.labels[name])
            s = np.concatenate(self.scores[name])
            w = np.concatenate(self.weights[name])
            aupr = float(average_precision_score(y, s, sample_weight=w)) if y.any() else float("nan")
            dice = 2 * self.inter[name] / self.total[name] if self.total[name] > 0 else float("nan")
            out[name] = {"aupr": aupr, "dice": dice, "positives": int(y.sum())}
        return out


def mean_lesion(metrics: dict[str, dict[str, float]], key: str = "aupr") -> float:
    values = [m[key] for m in metrics.values() if not np.isnan(m[key])]
    return float(np.mean(values)) if values else float("nan")


def save_confusion_png(confusion: list[list[int]], path: Path, title: str = "Grade confusion matrix") -> Path:
    """Write the confusion matrix (rows: true grade, columns: predicted) as a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    cm = np.asarray(confusion)
    fig, ax = plt.subplots(figsize=(5.2, 4.6), dpi=120)
    ax.imshow(cm, cmap="Blues")
    labels = [f"{g}\n{GRADE_NAMES[g].split()[0]}" for g in GRADES]
    ax.set_xticks(range(len(GRADES)), labels, fontsize=8)
    ax.set_yticks(range(len(GRADES)), labels, fontsize=8)
    ax.set_xlabel("predicted grade")
    ax.set_ylabel("true grade")
    ax.set_title(title)
    vmax = cm.max() if cm.size else 0
    for i in range(cm.shape[0]):
        for j in range(cm.shape[1]):
            ax.text(j, i, str(cm[i, j]), ha="center", va="center", color="white" if cm[i, j] > vmax / 2 else "black")
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)
    return path
