"""Agreement figures for the dashboard: pure functions of (grade, grade) pairs."""

from __future__ import annotations

from collections.abc import Sequence
from itertools import combinations

import numpy as np

from drgnet.metrics import grade_confusion, quadratic_weighted_kappa


def confusion(pairs: Sequence[tuple[int, int]]) -> np.ndarray:
    """5x5 counts (``drgnet.metrics``): rows are the first grade of each pair (the expert), columns the second."""
    first, second = zip(*pairs, strict=True) if pairs else ((), ())
    return grade_confusion(np.array(first, dtype=int), np.array(second, dtype=int))


def quadratic_kappa(pairs: Sequence[tuple[int, int]]) -> float | None:
    """Quadratic weighted kappa of the pairs (``drgnet.metrics``), or None for fewer than two pairs."""
    if len(pairs) < 2:
        return None
    a, b = zip(*pairs, strict=True)
    value = quadratic_weighted_kappa(np.array(a), np.array(b))
    return None if np.isnan(value) else value


def annotator_pairs(grades_by_image: dict[int, dict[str, int]]) -> list[tuple[int, int]]:
    """Every pair of grades two different annotators gave the same image."""
    pairs = []
    for by_user in grades_by_image.values():
        for (_, g1), (_, g2) in combinations(sorted(by_user.items()), 2):
            pairs.append((g1, g2))
    return pairs


def reference_comparison(
    reference: dict[int, int],
    model: dict[int, int],
    clinicians: dict[int, dict[str, int]],
) -> list[dict[str, object]]:
    """How the model and the clinicians agree with an imported reference, one row each (model first).

    Args:
        reference: image id -> the reference grade (imported labels).
        model: image id -> the model's grade.
        clinicians: image id -> {clinician -> grade} (their current annotations).

    Returns:
        Rows with the rater, the photographs compared, quadratic weighted kappa (None when undefined) and exact
        agreement (None without photographs): the model, all clinicians pooled, then each clinician.
    """

    def row(rater: str, pairs: list[tuple[int, int]]) -> dict[str, object]:
        agree = sum(a == b for a, b in pairs) / len(pairs) if pairs else None
        return {"rater": rater, "photographs": len(pairs), "kappa": quadratic_kappa(pairs), "agreement": agree}

    rows = [row("model", [(g, model[i]) for i, g in sorted(reference.items()) if i in model])]
    pooled: list[tuple[int, int]] = []
    each: dict[str, list[tuple[int, int]]] = {}
    for image_id, grade in sorted(reference.items()):
        for name, theirs in sorted(clinicians.get(image_id, {}).items()):
            pooled.append((grade, theirs))
            each.setdefault(name, []).append((grade, theirs))
    rows.append(row("clinicians (all)", pooled))
    rows += [row(name, pairs) for name, pairs in sorted(each.items())]
    return rows
