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
