import numpy as np
import pytest

from drgnet import labels


def test_lesion_channel_order_is_fixed():
    assert labels.LESIONS == ("MA", "HE", "EX", "SE")
    assert [labels.lesion_index(n) for n in ("ma", "He", "EX", " se ")] == [0, 1, 2, 3]
    assert set(labels.LESION_COLOURS) == set(labels.LESIONS)


def test_referable_threshold_and_bad_grades():
    assert [labels.is_referable(g) for g in labels.GRADES] == [False, False, True, True, True]
    with pytest.raises(ValueError, match="not an ICDR grade"):
        labels.check_grade(5)
    with pytest.raises(ValueError, match="unknown lesion"):
        labels.lesion_index("NV")


def test_referable_probability_is_the_mass_at_and_above_the_threshold():
    probs = [0.1, 0.2, 0.3, 0.25, 0.15]
    assert labels.referable_probability(probs) == pytest.approx(sum(probs[labels.REFERABLE_MIN_GRADE :]))
    assert labels.referable_probability(np.array(probs)) == pytest.approx(0.7)
    assert labels.referable_probability(None) == 0.0
    assert labels.referable_probability([]) == 0.0


def test_normalised_entropy_spans_certain_to_uniform():
    assert labels.normalised_entropy([0.2] * 5) == pytest.approx(1.0)
    assert labels.normalised_entropy(np.array([1.0, 0, 0, 0, 0])) == pytest.approx(0.0, abs=1e-9)
    assert 0.0 < labels.normalised_entropy([0.7, 0.1, 0.1, 0.05, 0.05]) < 1.0
    assert labels.normalised_entropy(None) == 0.0
    assert labels.normalised_entropy([1.0]) == 0.0


def test_lesion_colour_names_are_the_nearest_names_of_the_overlay_colours():
    # A legend prints the name, the overlay draws the RGB: the name must be what a person sees.
    named = {"red": (255, 0, 0), "violet": (143, 0, 255), "yellow": (255, 255, 0), "blue": (0, 128, 255)}
    named |= {"orange": (255, 165, 0), "green": (0, 160, 0), "gray": (128, 128, 128)}
    assert set(labels.LESION_COLOUR_NAMES) == set(labels.LESIONS)
    for lesion, rgb in labels.LESION_COLOURS.items():
        nearest = min(named, key=lambda n: sum((a - b) ** 2 for a, b in zip(named[n], rgb, strict=True)))
        assert labels.LESION_COLOUR_NAMES[lesion] == nearest, lesion
    assert labels.LESION_COLOUR_NAMES["EX"] == "yellow"  # hard exudates: the legend once said orange


def test_the_database_grade_count_matches_the_labels():
    # db imports nothing of drgnet (DESIGN.md §2), so it keeps its own count; this keeps the two equal.
    import db.repository

    assert db.repository.NUM_GRADES == labels.NUM_GRADES
