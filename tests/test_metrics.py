import numpy as np
import pytest

from drgnet.labels import normalised_entropy
from drgnet.metrics import (
    LesionAccumulator,
    grade_confusion,
    grade_metrics,
    normalised_grade_entropy,
    quadratic_weighted_kappa,
    referable_sensitivity_specificity,
    save_confusion_png,
)


def test_qwk_perfect_chance_and_ordinal():
    y = np.array([0, 1, 2, 3, 4, 0, 2])
    assert quadratic_weighted_kappa(y, y) == pytest.approx(1.0)
    near = np.clip(y + 1, 0, 4)
    far = 4 - y
    assert quadratic_weighted_kappa(y, near) > quadratic_weighted_kappa(y, far)
    assert quadratic_weighted_kappa(y, far) < 0


def test_grade_metrics_on_a_known_case():
    y = np.array([0, 0, 1, 2, 3, 4])
    probs = np.eye(5)[[0, 1, 1, 2, 3, 4]] * 0.9 + 0.02
    m = grade_metrics(y, probs)
    assert m["accuracy"] == pytest.approx(5 / 6)
    assert m["referable_sensitivity"] == 1.0
    assert m["referable_specificity"] == 1.0
    assert m["referable_auc"] == pytest.approx(1.0)
    assert np.asarray(m["confusion"]).sum() == 6 and m["confusion"][0][1] == 1
    with pytest.raises(ValueError, match="probs must be"):
        grade_metrics(y, probs[:, :4])


def test_referable_calls_from_grades_use_the_referable_threshold():
    expert = np.array([0, 1, 2, 3, 4, 1])
    model = np.array([0, 2, 1, 3, 4, 1])  # one false referral (1 -> 2), one missed referable eye (2 -> 1)
    sensitivity, specificity = referable_sensitivity_specificity(expert, model)
    assert (sensitivity, specificity) == (pytest.approx(2 / 3), pytest.approx(2 / 3))
    sensitivity, specificity = referable_sensitivity_specificity(np.array([0, 1]), np.array([0, 0]))
    assert np.isnan(sensitivity) and specificity == 1.0  # no referable eye: sensitivity is undefined


def test_grade_confusion_counts_pairs_and_refuses_non_grades():
    counts = grade_confusion(np.array([0, 0, 4]), np.array([1, 1, 4]))
    assert counts.shape == (5, 5) and counts[0, 1] == 2 and counts[4, 4] == 1 and counts.sum() == 3
    assert grade_confusion(np.array([]), np.array([])).sum() == 0
    with pytest.raises(ValueError, match="ICDR grades"):
        grade_confusion(np.array([5]), np.array([0]))


def test_batched_grade_entropy_is_the_clinical_uncertainty():
    probs = np.array([[1.0, 0, 0, 0, 0], [0.2] * 5, [0.5, 0.3, 0.1, 0.05, 0.05]])
    entropy = normalised_grade_entropy(probs)
    assert entropy == pytest.approx([normalised_entropy(p) for p in probs])
    assert entropy[0] == pytest.approx(0.0, abs=1e-9) and entropy[1] == pytest.approx(1.0)


def test_lesion_accumulator_aupr_dice_and_validity():
    rng = np.random.default_rng(0)
    targets = np.zeros((4, 32, 32))
    targets[0, 5:10, 5:10] = 1
    probs = np.clip(targets * 0.9 + rng.random((4, 32, 32)) * 0.1, 0, 1)
    valid = np.ones((4, 32, 32), bool)
    valid[3] = False
    acc = LesionAccumulator()
    acc.add(probs, targets, valid)
    res = acc.result()
    assert res["MA"]["aupr"] == pytest.approx(1.0)
    assert res["MA"]["dice"] == pytest.approx(1.0)
    assert np.isnan(res["SE"]["aupr"]) and res["SE"]["positives"] == 0
    assert np.isnan(res["HE"]["aupr"])  # valid pixels but no positive: AUPR undefined


def test_lesion_accumulator_subsamples_negatives_without_bias():
    rng = np.random.default_rng(1)
    probs = rng.random((4, 200, 200))
    targets = (rng.random((4, 200, 200)) < 0.01).astype(float)
    valid = np.ones_like(targets, bool)
    full, sub = LesionAccumulator(max_negatives=10**9), LesionAccumulator(max_negatives=5000)
    full.add(probs, targets, valid)
    sub.add(probs, targets, valid)
    assert sub.result()["HE"]["aupr"] == pytest.approx(full.result()["HE"]["aupr"], abs=0.01)


def test_confusion_png(tmp_path):
    path = save_confusion_png(
        [[3, 1, 0, 0, 0], [0, 2, 0, 0, 0], [0, 0, 1, 0, 0], [0] * 5, [0, 0, 0, 0, 4]], tmp_path / "c.png"
    )
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
