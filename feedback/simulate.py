"""A simulated expert: corrections of a model's predictions, made from ground truth with configurable noise.

It drives the feedback benchmark and the tests. From the true grade and lesion masks (e.g. a synthetic cohort's)
and the model's predicted masks, it produces corrections of each kind in the stored form of :mod:`feedback.masks`:

- ``grade-only``: the (possibly flipped) grade.
- ``partial``: strokes on the prediction: lesions the model missed are painted (with a brush that overshoots by
  ``brush_px``), false positives are erased (a wider eraser, never over what the expert sees as lesion).
- ``full``: the complete masks as the expert sees them.

Noise (:class:`ExpertNoise`): grade flips (mostly to a neighbouring grade), lesion borders eroded or dilated,
missed lesions (connected components dropped), spurious strokes (blobs where there is no lesion). What the expert
"sees" (:meth:`SimulatedExpert.perceive`) carries the mask noise into both partial and full corrections.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from scipy import ndimage

from drgnet.labels import LESIONS, NUM_GRADES
from feedback.masks import encode_full, encode_partial

KINDS = ("grade-only", "partial", "full")


@dataclass(frozen=True)
class ExpertNoise:
    """How unreliable the simulated expert is. All probabilities are per grade, per lesion region or per map."""

    grade_flip: float = 0.0  # probability that the grade is wrong
    neighbour_share: float = 0.8  # of wrong grades, the share one grade off (the rest: any other grade)
    boundary: float = 0.0  # probability that a lesion region is eroded or dilated
    boundary_px: int = 2  # by how much
    miss: float = 0.0  # probability that a lesion region is missed
    spurious: float = 0.0  # probability, per lesion map, of one spurious stroke

    @classmethod
    def level(cls, p: float) -> ExpertNoise:
        """One knob for the benchmark: flips, border errors and spurious strokes at ``p``, misses at ``p / 2``."""
        return cls(grade_flip=p, boundary=p, miss=p / 2, spurious=p)


@dataclass(frozen=True)
class Correction:
    """One simulated annotation: kind, grade and lesion name -> stored mask array."""

    kind: str
    grade: int
    masks: dict[str, np.ndarray] = field(default_factory=dict, repr=False)


class SimulatedExpert:
    """Makes corrections from ground truth with :class:`ExpertNoise`.

    Args:
        noise: The expert's unreliability.
        seed: Random seed; the same seed and inputs give the same corrections.
        brush_px: Brush overshoot of painted strokes (photograph pixels); the eraser is twice as wide.
    """

    def __init__(self, noise: ExpertNoise | None = None, seed: int = 0, brush_px: int = 1) -> None:
        self.noise = noise or ExpertNoise()
        self.rng = np.random.default_rng(seed)
        self.brush_px = brush_px

    def grade(self, true_grade: int) -> int:
        """The grade the expert gives."""
        if self.rng.random() >= self.noise.grade_flip:
            return int(true_grade)
        if self.rng.random() < self.noise.neighbour_share:
            options = [g for g in (true_grade - 1, true_grade + 1) if 0 <= g < NUM_GRADES]
        else:
            options = [g for g in range(NUM_GRADES) if abs(g - true_grade) > 1]
        options = options or [g for g in range(NUM_GRADES) if g != true_grade]
        return int(self.rng.choice(options))

    def perceive(self, truth: np.ndarray, fov: np.ndarray | None = None) -> np.ndarray:
        """The ``(4, H, W)`` bool masks the expert believes in: true masks with region-level noise."""
        truth = np.asarray(truth) > 0
        seen = np.zeros_like(truth)
        n = self.noise
        for k in range(len(truth)):
            labels, count = ndimage.label(truth[k])
            for region in range(1, count + 1):
                part = labels == region
                if self.rng.random() < n.miss:
                    continue
                if self.rng.random() < n.boundary:
                    r = int(self.rng.integers(1, n.boundary_px + 1))
                    if self.rng.random() < 0.5:
                        eroded = ndimage.binary_erosion(part, iterations=r)
                        part = eroded if eroded.any() else part
                    else:
                        part = ndimage.binary_dilation(part, iterations=r)
                seen[k] |= part
            if self.rng.random() < n.spurious:
                seen[k] |= self._blob(truth.shape[1:], fov)
        return seen

    def _blob(self, shape: tuple[int, int], fov: np.ndarray | None) -> np.ndarray:
        h, w = shape
        blob = np.zeros(shape, bool)
        if fov is not None and fov.any():
            ys, xs = np.nonzero(fov)
            i = self.rng.integers(len(ys))
            cy, cx = ys[i], xs[i]
        else:
            cy, cx = self.rng.integers(h), self.rng.integers(w)
        r = max(1, int(round(min(h, w) * self.rng.uniform(0.01, 0.03))))
        yy, xx = np.ogrid[:h, :w]
        blob[(yy - cy) ** 2 + (xx - cx) ** 2 <= r * r] = True
        return blob

    def correct(
        self,
        kind: str,
        true_grade: int,
        true_masks: np.ndarray,
        predicted_masks: np.ndarray,
        fov: np.ndarray | None = None,
    ) -> Correction:
        """A correction of ``kind`` of a prediction (``predicted_masks``: ``(4, H, W)`` bool at the photograph's
        resolution). A partial correction without a single stroke becomes grade-only."""
        if kind not in KINDS:
            raise ValueError(f"unknown correction kind {kind!r}; choose one of {', '.join(KINDS)}")
        grade = self.grade(true_grade)
        if kind == "grade-only":
            return Correction(kind, grade)
        seen = self.perceive(true_masks, fov)
        pred = np.asarray(predicted_masks) > 0
        if kind == "full":
            return Correction(kind, grade, {name: encode_full(seen[k]) for k, name in enumerate(LESIONS)})
        masks = {}
        for k, name in enumerate(LESIONS):
            missed = seen[k] & ~pred[k]
            wrong = pred[k] & ~seen[k]
            add = ndimage.binary_dilation(missed, iterations=self.brush_px) if self.brush_px else missed
            remove = ndimage.binary_dilation(wrong, iterations=2 * self.brush_px) if self.brush_px else wrong
            remove &= ~seen[k]
            if add.any() or remove.any():
                masks[name] = encode_partial(add, remove)
        if not masks:
            return Correction("grade-only", grade)
        return Correction(kind, grade, masks)
