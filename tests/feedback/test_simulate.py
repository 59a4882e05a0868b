"""The simulated expert: exact at noise 0, noisy in the documented ways above it."""

from __future__ import annotations

import numpy as np

from feedback.masks import decode_full, decode_partial
from feedback.simulate import ExpertNoise, SimulatedExpert


def _masks() -> np.ndarray:
    truth = np.zeros((4, 40, 40), bool)
    truth[1, 5:10, 5:10] = True
    truth[1, 20:25, 20:25] = True
    truth[2, 30:33, 30:33] = True
    return truth


def test_noise_free_corrections_reproduce_the_truth() -> None:
    truth = _masks()
    pred = np.zeros_like(truth)
    pred[1, 5:10, 5:10] = True  # found
    pred[0, 12:15, 12:15] = True  # a false positive
    expert = SimulatedExpert(ExpertNoise(), seed=0)
    full = expert.correct("full", 3, truth, pred)
    assert full.grade == 3 and all(
        (decode_full(full.masks[n]) == truth[k]).all() for k, n in enumerate(["MA", "HE", "EX", "SE"])
    )
    partial = expert.correct("partial", 3, truth, pred)
    painted, erased = decode_partial(partial.masks["HE"])
    assert painted[22, 22] and not painted[7, 7]  # only what the model missed is painted
    assert decode_partial(partial.masks["MA"])[1][13, 13]  # the false positive is erased
    assert expert.correct("grade-only", 2, truth, pred).masks == {}


def test_grade_flips_go_mostly_to_neighbours_and_masks_get_noisy() -> None:
    expert = SimulatedExpert(ExpertNoise.level(0.4), seed=1)
    grades = np.array([expert.grade(2) for _ in range(2000)])
    wrong = grades != 2
    assert 0.3 < wrong.mean() < 0.5
    assert (np.abs(grades[wrong] - 2) == 1).mean() > 0.7
    truth = _masks()
    changed = sum(int((expert.perceive(truth) != truth).any()) for _ in range(50))
    assert changed > 30
