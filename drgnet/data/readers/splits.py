"""Stratified train / validation / test splits from a reader's grades."""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np


def split_indices(
    grades: Sequence[int | None],
    fractions: tuple[float, float, float] = (0.7, 0.15, 0.15),
    seed: int = 0,
) -> tuple[list[int], list[int], list[int]]:
    """Divide indices into train / validation / test, stratified by grade, for sources without official
    splits.

    Within each grade (None counts as its own group) indices are shuffled with ``seed`` and cut by
    ``fractions``; the places that rounding leaves over go to whichever part is furthest behind its overall
    share, so both each grade and the totals stay close to the fractions. The same inputs always give the
    same split.

    Args:
        grades: One grade per image, e.g. ``reader.grades``.
        fractions: Shares of train, validation and test; non-negative, summing to 1.
        seed: Random seed of the shuffle.

    Returns:
        Three sorted, disjoint lists of indices that together cover ``range(len(grades))``.
    """
    if len(fractions) != 3 or any(f < 0 for f in fractions) or not math.isclose(sum(fractions), 1.0):
        raise ValueError(f"fractions must be three non-negative shares summing to 1, got {fractions}")
    groups: dict[int, list[int]] = {}
    for i, g in enumerate(grades):
        groups.setdefault(-1 if g is None else int(g), []).append(i)
    rng = np.random.default_rng(seed)
    parts: tuple[list[int], list[int], list[int]] = ([], [], [])
    assigned = [0, 0, 0]
    target = [0.0, 0.0, 0.0]
    for key in sorted(groups):
        idx = list(rng.permutation(groups[key]))
        ideal = [len(idx) * f for f in fractions]
        counts = [math.floor(x) for x in ideal]
        target = [t + x for t, x in zip(target, ideal, strict=True)]
        for _ in range(len(idx) - sum(counts)):
            behind = [target[k] - assigned[k] - counts[k] if fractions[k] > 0 else -math.inf for k in range(3)]
            counts[behind.index(max(behind))] += 1
        start = 0
        for k in range(3):
            parts[k].extend(int(i) for i in idx[start : start + counts[k]])
            start += counts[k]
            assigned[k] += counts[k]
    return sorted(parts[0]), sorted(parts[1]), sorted(parts[2])
