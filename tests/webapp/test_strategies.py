from datetime import UTC, datetime, timedelta
from types import SimpleNamespace

import pytest

from drgnet.labels import normalised_entropy
from feedback.strategies import (
    STRATEGIES,
    get_strategy,
    most_uncertain_first,
    oldest_unreviewed_first,
    referable_first,
)

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def row(i, probs, *, age_days=0, annotations=0):
    image = SimpleNamespace(id=i, created_at=T0 - timedelta(days=age_days))
    pred = None if probs is None else SimpleNamespace(probabilities=probs, grade=max(range(5), key=probs.__getitem__))
    return SimpleNamespace(image=image, prediction=pred, annotation_count=annotations, has_my_annotation=False)


ROWS = [
    row(1, [0.96, 0.01, 0.01, 0.01, 0.01], age_days=1),
    row(2, [0.2, 0.2, 0.2, 0.2, 0.2], age_days=5, annotations=1),
    row(3, [0.05, 0.05, 0.1, 0.7, 0.1], age_days=3),
    row(4, None, age_days=9),
]


def test_most_uncertain_first():
    assert [r.image.id for r in most_uncertain_first(ROWS)] == [2, 3, 1, 4]
    assert normalised_entropy([0.2] * 5) == pytest.approx(1.0)


def test_referable_first():
    assert [r.image.id for r in referable_first(ROWS)] == [3, 2, 1, 4]


def test_oldest_unreviewed_first():
    assert [r.image.id for r in oldest_unreviewed_first(ROWS)] == [4, 3, 1, 2]


def test_registry():
    assert set(STRATEGIES) == {"Most uncertain first", "Referable first", "Oldest unreviewed first"}
    with pytest.raises(ValueError, match="choose one of"):
        get_strategy("random")
