"""Clinician corrections -> weak labels the retraining job can learn from.

Per annotation kind (see :mod:`feedback.masks` for how masks are stored):

- ``grade-only``: a grade target and no pixel supervision, except that grade 0 (no DR) means every lesion map is
  empty: all four maps become all-negative with full weight (inside the field of view; the field is applied when
  the photograph is brought to the model input). Other grades teach the lesion branch only through the
  lesion-grade constraint.
- ``partial``: painted pixels are positive, erased pixels negative, untouched pixels ignored (weight 0). A tolerance
  band of ``tolerance_px`` pixels at each stroke's edge is ignored too: a brush overshoots a lesion's border, so
  the edge of a stroke is the least certain part of it. A stroke thinner than the band keeps its centre line.
- ``full``: every pixel of each given lesion map is supervised.
- ``ungradable``: excluded; an image that most (reliability-weighted) annotators call ungradable is left out.

Several annotators of one image: each annotator's latest annotation counts once, weighted by a reliability
estimated from agreement (:func:`reliability_weights`). The consensus grade is the weighted median, the soft grade
the weighted histogram, and the sample weight (of the grade loss) says how much the weighted annotators agree.
Lesion pixels take the weighted vote of the annotators who supervised them (ties are ignored).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
from scipy import ndimage
from sqlalchemy.orm import Session

from db import repository
from db.artifacts import ArtifactStore
from db.models import Annotation, AnnotationKind
from drgnet.labels import LESIONS, NUM_GRADES, NUM_LESIONS
from drgnet.metrics import quadratic_weighted_kappa
from feedback.masks import decode_full, decode_partial

DEFAULT_TOLERANCE_PX = 2
MIN_RELIABILITY = 0.1
MIN_SHARED_IMAGES = 3


@dataclass
class Vote:
    """One annotator's latest annotation of one image, decoded at the photograph's resolution."""

    annotator_id: int
    kind: str
    grade: int | None  # None: ungradable
    positive: np.ndarray | None = field(default=None, repr=False)  # (4, H, W) bool
    supervised: np.ndarray | None = field(default=None, repr=False)  # (4, H, W) bool


@dataclass
class WeakLabel:
    """What the retraining job learns from one corrected image.

    Attributes:
        image_id: The image row.
        grade: Consensus ICDR grade.
        soft_grade: ``(5,)`` reliability-weighted share of annotators per grade.
        sample_weight: Weight of this image's grade loss, in (0, 1].
        masks: ``(4, H, W)`` uint8 lesion targets at the photograph's resolution.
        supervised: ``(4, H, W)`` bool: pixels with a label; the rest are ignored (weight 0).
        kinds: Kinds of the annotations combined.
        annotators: Ids of the annotators combined.
    """

    image_id: int
    grade: int
    soft_grade: np.ndarray
    sample_weight: float
    masks: np.ndarray = field(repr=False)
    supervised: np.ndarray = field(repr=False)
    kinds: tuple[str, ...] = ()
    annotators: tuple[int, ...] = ()

    @property
    def has_pixels(self) -> bool:
        return bool(self.supervised.any())


def stroke_core(stroke: np.ndarray, tolerance_px: int) -> np.ndarray:
    """The part of a stroke farther than ``tolerance_px`` from its edge; a thinner stroke keeps its deepest pixels."""
    stroke = np.asarray(stroke, bool)
    if tolerance_px <= 0 or not stroke.any():
        return stroke.copy()
    depth = ndimage.distance_transform_edt(stroke)
    core = depth > tolerance_px
    labels, n = ndimage.label(stroke, structure=np.ones((3, 3)))
    if n:
        deepest = ndimage.maximum(depth, labels, index=np.arange(1, n + 1))
        thin = np.zeros(n + 1, bool)
        thin[1:] = np.asarray(deepest) <= tolerance_px
        peak = np.zeros(n + 1)
        peak[1:] = deepest
        keep = thin[labels] & (depth >= peak[labels] - 1e-6) & stroke
        core |= keep
    return core


def decode_vote(
    annotation: Annotation, store: ArtifactStore, shape: tuple[int, int], tolerance_px: int = DEFAULT_TOLERANCE_PX
) -> Vote:
    """Decode one stored annotation into positive / supervised pixel maps (see the module notes per kind).

    Raises:
        ValueError: for a mask whose size differs from the photograph's, or an unknown lesion name.
    """
    arrays = {name: store.get_png(sha) for name, sha in (annotation.mask_hashes or {}).items()}
    try:
        return vote_from_masks(annotation.annotator_id, annotation.kind, annotation.grade, arrays, shape, tolerance_px)
    except ValueError as exc:
        raise ValueError(f"annotation {annotation.id}: {exc}") from None


def vote_from_masks(
    annotator_id: int,
    kind: str,
    grade: int | None,
    masks: Mapping[str, np.ndarray],
    shape: tuple[int, int],
    tolerance_px: int = DEFAULT_TOLERANCE_PX,
) -> Vote:
    """One annotator's opinion from its stored mask arrays (lesion name -> array in :mod:`feedback.masks` form)."""
    kind = AnnotationKind(kind)
    vote = Vote(annotator_id, kind.value, grade)
    if kind is AnnotationKind.UNGRADABLE:
        return vote
    h, w = shape
    positive = np.zeros((NUM_LESIONS, h, w), bool)
    supervised = np.zeros((NUM_LESIONS, h, w), bool)
    for name, png in masks.items():
        if name not in LESIONS:
            raise ValueError(f"unknown lesion {name!r}; expected one of {LESIONS}")
        k = LESIONS.index(name)
        if png.shape[:2] != (h, w):
            raise ValueError(
                f"{name} mask is {png.shape[1]}x{png.shape[0]}, the photograph {w}x{h}; "
                "masks must be stored at the photograph's resolution"
            )
        if kind is AnnotationKind.FULL:
            positive[k] = decode_full(png)
            supervised[k] = True
        else:
            painted, erased = decode_partial(png)
            painted, erased = stroke_core(painted, tolerance_px), stroke_core(erased, tolerance_px)
            positive[k] = painted
            supervised[k] = painted | erased
    if grade == 0:
        # No DR: no lesion anywhere. Explicit painted strokes are kept (they contradict the grade; the vote decides).
        supervised[:] = True
    vote.positive, vote.supervised = positive, supervised
    return vote


def _weighted_median(values: Sequence[int], weights: Sequence[float]) -> int:
    order = np.argsort(values, kind="stable")
    v = np.asarray(values)[order]
    cw = np.cumsum(np.asarray(weights, float)[order])
    return int(v[np.searchsorted(cw, cw[-1] / 2.0)])


def reliability_weights(
    grades: Mapping[int, Mapping[int, int]],
    iterations: int = 3,
    min_weight: float = MIN_RELIABILITY,
    min_shared: int = MIN_SHARED_IMAGES,
) -> dict[int, float]:
    """Per-annotator reliability from agreement with the others.

    Each round, an annotator's weight is the quadratic weighted kappa between their grades and the weighted-median
    grade of the other annotators of the same images (weighted by the previous round), clipped to
    ``[min_weight, 1]``. Annotators who share fewer than ``min_shared`` images with anyone keep weight 1: there is
    no evidence against them (so a single annotator always has weight 1).

    Args:
        grades: image id -> {annotator id -> grade}.
    """
    annotators = sorted({a for per_image in grades.values() for a in per_image})
    weights = dict.fromkeys(annotators, 1.0)
    for _ in range(max(1, iterations)):
        new: dict[int, float] = {}
        for a in annotators:
            mine, consensus = [], []
            for per_image in grades.values():
                if a not in per_image or len(per_image) < 2:
                    continue
                others = [(g, weights[b]) for b, g in per_image.items() if b != a]
                mine.append(per_image[a])
                consensus.append(_weighted_median([g for g, _ in others], [w for _, w in others]))
            if len(mine) < min_shared:
                new[a] = 1.0
                continue
            kappa = quadratic_weighted_kappa(np.array(mine), np.array(consensus))
            new[a] = float(np.clip(kappa, min_weight, 1.0)) if np.isfinite(kappa) else min_weight
        weights = new
    return weights


def combine_votes(image_id: int, votes: Sequence[Vote], weights: Mapping[int, float]) -> WeakLabel | None:
    """One image's weak label from its annotators' votes, or None when it is excluded (ungradable, no votes)."""
    if not votes:
        return None
    w = {v.annotator_id: float(weights.get(v.annotator_id, 1.0)) for v in votes}
    graded = [v for v in votes if v.grade is not None]
    ungradable_w = sum(w[v.annotator_id] for v in votes if v.grade is None)
    graded_w = sum(w[v.annotator_id] for v in graded)
    if not graded or ungradable_w >= graded_w:
        return None
    gw = [w[v.annotator_id] for v in graded]
    grade = _weighted_median([v.grade for v in graded], gw)
    soft = np.zeros(NUM_GRADES, np.float32)
    for v, wv in zip(graded, gw, strict=True):
        soft[v.grade] += wv
    soft /= soft.sum()
    agreeing = sum(wv for v, wv in zip(graded, gw, strict=True) if v.grade == grade)
    sample_weight = float(agreeing / sum(gw) * max(gw))

    shape = graded[0].positive.shape
    pos_votes = np.zeros(shape, np.float32)
    sup_votes = np.zeros(shape, np.float32)
    for v, wv in zip(graded, gw, strict=True):
        pos_votes += wv * v.positive
        sup_votes += wv * v.supervised
    supervised = sup_votes > 0
    share = np.divide(pos_votes, sup_votes, out=np.zeros_like(pos_votes), where=supervised)
    tie = supervised & np.isclose(share, 0.5)
    masks = (share > 0.5) & supervised
    supervised &= ~tie
    if grade == 0:
        masks[:] = False
        supervised[:] = True
    return WeakLabel(
        image_id=image_id,
        grade=grade,
        soft_grade=soft,
        sample_weight=sample_weight,
        masks=masks.astype(np.uint8),
        supervised=supervised,
        kinds=tuple(sorted({v.kind for v in votes})),
        annotators=tuple(sorted(w)),
    )


def current_corrections(session: Session) -> tuple[list[Annotation], dict[int, float]]:
    """Each annotator's current annotation of each image, oldest first, and the annotators' reliability weights.

    Imported reference labels (``drgnet import-labels``) are left out: they are what the model and the clinicians
    are compared with, not corrections, so they neither train the model nor weigh the annotators.
    """
    everything = repository.current_annotations(session, include_imported=False)
    grades: dict[int, dict[int, int]] = {}
    for a in everything:
        if a.grade is not None:
            grades.setdefault(a.image_id, {})[a.annotator_id] = a.grade
    return everything, reliability_weights(grades)


def collect_weak_labels(
    session: Session,
    store: ArtifactStore,
    *,
    tolerance_px: int = DEFAULT_TOLERANCE_PX,
    image_ids: Sequence[int] | None = None,
) -> tuple[list[WeakLabel], dict[int, float]]:
    """Weak labels of every corrected image in the database, and the annotators' reliability weights.

    Reliability is estimated from all current gradable annotations (not only ``image_ids``'), so a noisy
    annotator's weight does not depend on which images a job happens to look at. Imported reference annotations
    are left out.
    """
    everything, weights = current_corrections(session)
    wanted = set(image_ids) if image_ids is not None else None
    by_image: dict[int, list[Annotation]] = {}
    for a in everything:
        if wanted is None or a.image_id in wanted:
            by_image.setdefault(a.image_id, []).append(a)
    labels: list[WeakLabel] = []
    for image_id, image_annotations in sorted(by_image.items()):
        image = repository.get_image(session, image_id)
        if image is None:
            raise repository.NotFoundError(f"annotated image {image_id} is missing")
        shape = (image.height, image.width)
        votes = [decode_vote(a, store, shape, tolerance_px) for a in image_annotations]
        label = combine_votes(image_id, votes, weights)
        if label is not None:
            labels.append(label)
    return labels, weights
