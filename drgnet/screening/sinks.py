"""Sinks: where screened photographs go besides the results file (found by entry-point name)."""

from __future__ import annotations

from typing import Any, Protocol

import numpy as np

from drgnet.screening.loading import ScreenItem


class SinkError(RuntimeError):
    """A sink cannot go on (its database went away, its disk is full): the run stops with this message.

    Rows written before it are stored, so running the same command again resumes where it stopped.
    """


class ScreenSink(Protocol):
    """Where screened photographs go besides the output file (``drgnet screen --db``: the review worklist).

    Sinks are found by name in the ``drgnet.screen_sinks`` entry-point group (``load_sink``), so this package
    needs no import of the database layer. ``store`` is called once per scored photograph, before its row is
    written: a photograph whose row is in the output has been stored. A ``ValueError`` from ``store`` turns the
    row into an error row with that reason; a ``SinkError`` (or anything else) stops the run.
    """

    def store(
        self,
        item: ScreenItem,
        row: dict[str, Any],
        grade_probs: np.ndarray,
        lesion_probs: np.ndarray,
        attention: np.ndarray,
    ) -> None:
        """Keep one photograph: ``item`` holds its bytes and preprocessing; grade and attention come from the global
        view, the lesion maps from the lesion view when the model has one.

        Args:
            item: The prepared photograph (``data``, ``pre`` and ``original`` are set).
            row: Its output row (status ok).
            grade_probs: ``(5,)`` grade probabilities.
            lesion_probs: ``(4, L, L)`` lesion probabilities over the global view's square (``L = S``, or the
                side of the lesion view).
            attention: ``(S, S)`` high-level attention.
        """
        ...

    def close(self) -> None: ...


SINK_GROUP = "drgnet.screen_sinks"


def load_sink(name: str, **options: Any) -> ScreenSink:
    """Build the sink registered under ``name`` in the ``drgnet.screen_sinks`` entry points.

    Raises:
        ValueError: No such sink is installed, or the sink refused its options (e.g. an unreachable database).
    """
    from importlib.metadata import entry_points

    found = {ep.name: ep for ep in entry_points(group=SINK_GROUP)}
    if name not in found:
        have = ", ".join(sorted(found)) or "none"
        raise ValueError(f"no screening sink {name!r} is installed (installed: {have}); reinstall drgnet")
    return found[name].load()(**options)
