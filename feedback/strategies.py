"""Review-queue strategies: which image a clinician should look at next.

Like MONAI Label's active-learning strategies, each strategy is a small callable that takes the candidate rows of
the review queue (:class:`db.repository.ReviewQueueRow`) and returns them in the order to review. They only read
the rows, so they work on any backend and are trivial to test; the registry below names them for the web app.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Protocol

from db.repository import ReviewQueueRow

#: ICDR grade at and above which a patient is referred (repeated from drgnet.labels to keep this module light).
REFERABLE_MIN_GRADE = 2


class Strategy(Protocol):
    def __call__(self, rows: Sequence[ReviewQueueRow]) -> list[ReviewQueueRow]: ...


def grade_entropy(probabilities: Sequence[float] | None) -> float:
    """Normalised entropy of the grade probabilities in [0, 1] (1: the model cannot tell the grades apart)."""
    if not probabilities:
        return 0.0
    p = [min(max(float(x), 1e-12), 1.0) for x in probabilities]
    return -sum(x * math.log(x) for x in p) / math.log(len(p)) if len(p) > 1 else 0.0


def referable_probability(probabilities: Sequence[float] | None) -> float:
    """P(grade >= moderate NPDR) from the grade probabilities (0 when there is no prediction)."""
    if not probabilities:
        return 0.0
    return float(sum(probabilities[REFERABLE_MIN_GRADE:]))


def _created(row: ReviewQueueRow) -> float:
    return row.image.created_at.timestamp() if row.image.created_at is not None else 0.0


def most_uncertain_first(rows: Sequence[ReviewQueueRow]) -> list[ReviewQueueRow]:
    """Highest grade entropy first: where a clinician's answer teaches the model most. Unpredicted images last."""
    return sorted(
        rows,
        key=lambda r: (r.prediction is None, -grade_entropy(r.prediction.probabilities if r.prediction else None)),
    )


def referable_first(rows: Sequence[ReviewQueueRow]) -> list[ReviewQueueRow]:
    """Highest probability of referable DR first: patients who may need an ophthalmologist soonest."""
    return sorted(
        rows,
        key=lambda r: (
            r.prediction is None,
            -referable_probability(r.prediction.probabilities if r.prediction else None),
            _created(r),
        ),
    )


def oldest_unreviewed_first(rows: Sequence[ReviewQueueRow]) -> list[ReviewQueueRow]:
    """Images nobody has annotated first, oldest upload first; then the annotated ones, oldest first."""
    return sorted(rows, key=lambda r: (r.annotation_count > 0, _created(r), r.image.id))


#: Strategy name (as shown to clinicians) -> strategy.
STRATEGIES: dict[str, Callable[[Sequence[ReviewQueueRow]], list[ReviewQueueRow]]] = {
    "Most uncertain first": most_uncertain_first,
    "Referable first": referable_first,
    "Oldest unreviewed first": oldest_unreviewed_first,
}


def get_strategy(name: str) -> Callable[[Sequence[ReviewQueueRow]], list[ReviewQueueRow]]:
    """The strategy called ``name``.

    Raises:
        ValueError: naming the strategies there are.
    """
    try:
        return STRATEGIES[name]
    except KeyError:
        raise ValueError(f"unknown review strategy {name!r}; choose one of {', '.join(STRATEGIES)}") from None
