import numpy as np
import pytest

from drgnet.metrics import LesionAccumulator, grade_metrics, quadratic_weighted_kappa, save_confusion_png


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
