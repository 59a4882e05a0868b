"""Review-queue strategies: which image a clinician should look at next.

Like MONAI Label's active-learning strategies, each strategy is a small callable that takes the candidate rows of
the review queue (:class:`db.repository.ReviewQueueRow`) and returns them in the order to review. They only read
the rows, so they work on any backend and are trivial to test; the registry below names them for the web app.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Protocol

from db.repository import ReviewQueueRow
from drgnet.labels import normalised_entropy, referable_probability


class Strategy(Protocol):
    def __call__(self, rows: Sequence[ReviewQueueRow]) -> list[ReviewQueueRow]: ...


def _created(row: ReviewQueueRow) -> float:
    return row.image.created_at.timestamp() if row.image.created_at is not None else 0.0


def most_uncertain_first(rows: Sequence[ReviewQueueRow]) -> list[ReviewQueueRow]:
    """Highest grade entropy first: where a clinician's answer teaches the model most. Unpredicted images last."""
    return sorted(
        rows,
        key=lambda r: (r.prediction is None, -normalised_entropy(r.prediction.probabilities if r.prediction else None)),
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
