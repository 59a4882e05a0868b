"""Corrections -> weak labels: the mask convention, each annotation kind, several annotators."""

from __future__ import annotations

import numpy as np
import pytest

from drgnet.labels import LESIONS
from feedback.masks import (
    ERASED,
    PAINTED,
    UNTOUCHED,
    decode_full,
    decode_partial,
    encode_full,
    encode_partial,
    merge_full,
)
from feedback.weak_labels import Vote, combine_votes, reliability_weights, stroke_core

HE = LESIONS.index("HE")


def test_partial_mask_round_trip_and_merge() -> None:
    add = np.zeros((8, 8), bool)
    add[1:4, 1:4] = True
    remove = np.zeros((8, 8), bool)
    remove[3:6, 3:6] = True
    png = encode_partial(add, remove)
    assert png.dtype == np.uint8 and set(np.unique(png)) == {UNTOUCHED, ERASED, PAINTED}
    assert png[3, 3] == ERASED  # erasing wins where both
    painted, erased = decode_partial(png)
    assert (painted == (add & ~remove)).all() and (erased == remove).all()
    pred = np.zeros((8, 8), bool)
    pred[5:8, 5:8] = True
    assert (merge_full(pred, add, remove) == ((pred | add) & ~remove)).all()
    assert (decode_full(encode_full(pred)) == pred).all()
    with pytest.raises(ValueError, match="0 \\(untouched\\), 1 \\(erased\\) or 2 \\(painted\\)"):
        decode_partial(encode_full(pred))


def test_tolerance_band_ignores_stroke_edges_and_keeps_thin_strokes() -> None:
    stroke = np.zeros((20, 20), bool)
    stroke[2:12, 2:12] = True  # a 10x10 dab
    stroke[15, 2:18] = True  # a 1-pixel line
    core = stroke_core(stroke, 2)
    assert core[7, 7] and not core[2, 2] and not core[3, 7]  # edge band dropped, centre kept
    assert core[15].sum() == stroke[15].sum()  # the thin line is thinner than the band: kept whole
    assert not (core & ~stroke).any()
    assert (stroke_core(stroke, 0) == stroke).all()


def _vote(annotator: int, kind: str, grade: int | None, shape=(4, 16, 16), positive=None, supervised=None) -> Vote:
    if grade is None:
        return Vote(annotator, kind, None)
    pos = np.zeros(shape, bool) if positive is None else positive
    sup = np.zeros(shape, bool) if supervised is None else supervised
    if grade == 0:
        sup = np.ones(shape, bool)
    return Vote(annotator, kind, grade, pos, sup)


def test_grade_only_supervises_no_pixel_unless_grade_zero() -> None:
    label = combine_votes(1, [_vote(1, "grade-only", 3)], {})
    assert label.grade == 3 and label.sample_weight == 1.0 and not label.supervised.any()
    zero = combine_votes(2, [_vote(1, "grade-only", 0)], {})
    assert zero.supervised.all() and not zero.masks.any()  # grade 0: every lesion map empty


def test_partial_strokes_and_full_masks() -> None:
    pos = np.zeros((4, 16, 16), bool)
    pos[HE, 4:8, 4:8] = True
    sup = pos.copy()
    sup[HE, 10:14, 10:14] = True  # erased
    label = combine_votes(1, [_vote(1, "partial", 2, positive=pos, supervised=sup)], {})
    assert label.masks[HE, 5, 5] == 1 and label.supervised[HE, 5, 5]
    assert label.masks[HE, 11, 11] == 0 and label.supervised[HE, 11, 11]
    assert not label.supervised[HE, 0, 0] and not label.supervised[0].any()  # untouched: ignored
    full_sup = np.zeros((4, 16, 16), bool)
    full_sup[HE] = True
    full = combine_votes(1, [_vote(1, "full", 2, positive=pos, supervised=full_sup)], {})
    assert full.supervised[HE].all() and full.masks[HE].sum() == 16


def test_ungradable_is_excluded() -> None:
    assert combine_votes(1, [_vote(1, "ungradable", None)], {}) is None
    # Outvoted by two gradable opinions of equal weight: kept.
    kept = combine_votes(1, [_vote(1, "ungradable", None), _vote(2, "grade-only", 2), _vote(3, "grade-only", 2)], {})
    assert kept is not None and kept.grade == 2


def test_noisy_annotator_gets_lower_reliability_and_weight() -> None:
    rng = np.random.default_rng(0)
    truth = rng.integers(0, 5, 40)
    noisy = np.where(rng.random(40) < 0.7, rng.integers(0, 5, 40), truth)
    grades = {i: {1: int(truth[i]), 2: int(truth[i]), 3: int(noisy[i])} for i in range(40)}
    weights = reliability_weights(grades)
    assert weights[1] > 0.9 and weights[2] > 0.9
    assert weights[3] < weights[1] - 0.2
    assert reliability_weights({1: {7: 3}}) == {7: 1.0}  # a single annotator: weight 1
    # The noisy annotator alone cannot outvote a reliable one: consensus follows annotator 1, soft grade is split.
    label = combine_votes(1, [_vote(1, "grade-only", 4), _vote(3, "grade-only", 1)], weights)
    assert label.grade == 4 and label.soft_grade[4] > label.soft_grade[1] > 0
    assert label.sample_weight < 1.0


def test_weak_labels_from_the_database(sqlite_corrected_db) -> None:
    from db import repository
    from db.artifacts import artifact_store
    from feedback.weak_labels import collect_weak_labels

    db = sqlite_corrected_db
    with db.Session.begin() as s:
        other = repository.create_user(s, "doc2", "mauve-otter-quietly-42", "clinician")
        repository.add_annotation(s, db.image_ids[2], other.id, kind="ungradable")
    with db.Session() as s:
        labels, weights = collect_weak_labels(s, artifact_store(db.data_dir))
    by_image = {label.image_id: label for label in labels}
    assert db.image_ids[2] not in by_image  # one of two annotators says ungradable: left out
    assert len(labels) == 5 and set(weights.values()) == {1.0}
    grade_zero = by_image[db.image_ids[0]]  # grade-only, grade 0
    assert grade_zero.grade == 0 and grade_zero.supervised.all() and not grade_zero.masks.any()
    partial = by_image[db.image_ids[1]]  # partial strokes on HE only, top-left corner erased
    assert not partial.supervised[[0, 2, 3]].any()
    assert partial.supervised[HE, 4, 4] and not partial.supervised[HE, 9, 5]  # the stroke edge band is ignored
    assert not partial.masks[HE, 4, 4]
    full = by_image[db.image_ids[5]]
    assert full.supervised[[0, 1]].all() and not full.supervised[[2, 3]].any()
