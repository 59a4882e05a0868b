"""The hold-out gate: a candidate may not be worse than the active version on the registered hold-out.

It fails closed: on the registered hold-out the candidate's QWK may drop at most ``max_qwk_drop`` below the
active version's, its mean lesion AUPR at most ``max_aupr_drop``, and its referable sensitivity and specificity
each at most ``max_referable_drop``; a figure that cannot be computed for either model, or a hold-out smaller than
``min_holdout_images``, rejects.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any

from torch.utils.data import DataLoader, Dataset

from drgnet.model import DRGNet
from drgnet.training.evaluate import evaluate

Progress = Callable[[float, str], None]

#: What the gate compares on the registered hold-out: (metric, label, which allowed drop applies).
GATED_METRICS = (
    ("qwk", "QWK", "max_qwk_drop"),
    ("lesion_aupr_mean", "mean lesion AUPR", "max_aupr_drop"),
    ("referable_sensitivity", "referable sensitivity", "max_referable_drop"),
    ("referable_specificity", "referable specificity", "max_referable_drop"),
)


def holdout_metrics(
    model: DRGNet,
    sets: Mapping[str, Dataset],
    batch_size: int = 16,
    progress: Progress | None = None,
) -> dict[str, dict[str, Any]]:
    """QWK, accuracy, referable sensitivity / specificity, per-grade confusion, per-lesion and mean AUPR / Dice of
    ``model`` on each hold-out set. ``progress`` is called after every batch (the worker's lease depends on it)."""
    out: dict[str, dict[str, Any]] = {}
    for name, dataset in sets.items():
        loader: Any = DataLoader(dataset, batch_size)
        if progress is not None:
            loader = _reporting(loader, progress, f"evaluating on {name}")
        m = evaluate(model, loader)
        row = {
            k: _finite(m.get(k))
            for k in (
                "qwk",
                "accuracy",
                "referable_auc",
                "referable_sensitivity",
                "referable_specificity",
                "lesion_aupr_mean",
                "lesion_dice_mean",
                "n_images",
            )
        }
        row["confusion"] = m.get("confusion")
        row["lesion_aupr"] = {k: _finite(v.get("aupr")) for k, v in (m.get("lesions") or {}).items()}
        confusion = m.get("confusion") or []
        row["n_healthy"] = int(sum(confusion[0])) if confusion else 0
        out[name] = row
    return out


class _reporting:  # noqa: N801 - used like a function
    """A loader that reports each batch it hands out."""

    def __init__(self, loader: DataLoader, progress: Progress, what: str) -> None:
        self.loader, self.progress, self.what = loader, progress, what

    def __len__(self) -> int:
        return len(self.loader)

    def __iter__(self) -> Iterator[Any]:
        n = len(self.loader)
        for i, batch in enumerate(self.loader):
            yield batch
            self.progress((i + 1) / max(n, 1), f"{self.what}: batch {i + 1}/{n}")


def _finite(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None  # JSON (and the database) refuse NaN
    return value


def gate(
    active: Mapping[str, Mapping[str, Any]],
    candidate: Mapping[str, Mapping[str, Any]],
    max_qwk_drop: float,
    max_aupr_drop: float,
    max_referable_drop: float = 0.02,
    *,
    min_images: int = 1,
    informational: Sequence[str] = (),
) -> tuple[bool, list[str]]:
    """Whether the candidate is not worse than the active version on every gated hold-out set, and why (or why not).

    Fails closed: a gated figure (:data:`GATED_METRICS`) that either model lacks (it could not be computed: no
    grade variety, no lesion pixels, no healthy or no referable photograph) rejects, and so does a hold-out with
    fewer than ``min_images`` photographs or no set at all. Sets named in ``informational`` are reported, never
    decide.
    """
    limits = {"max_qwk_drop": max_qwk_drop, "max_aupr_drop": max_aupr_drop, "max_referable_drop": max_referable_drop}
    gated = [name for name in active if name not in informational]
    if not gated:
        return False, ["no hold-out set to compare on: register one (drgnet model holdout register NAME FOLDER)"]
    ok, reasons = True, []
    for name, before in active.items():
        after = candidate.get(name) or {}
        if name in informational:
            for key, label, _ in GATED_METRICS:
                b, a = before.get(key), after.get(key)
                if b is not None and a is not None:
                    reasons.append(f"{name} (for information, not gated): {label} {b:.3f} -> {a:.3f}")
            continue
        n = before.get("n_images")
        if not isinstance(n, int) or n < min_images:
            ok = False
            reasons.append(f"{name}: {n or 0} photographs, fewer than the minimum of {min_images}: rejected")
        for key, label, limit_name in GATED_METRICS:
            limit = limits[limit_name]
            b, a = before.get(key), after.get(key)
            if b is None or a is None:
                ok = False
                missing = "the active version" if b is None else "the candidate"
                reasons.append(f"{name}: {label} cannot be computed for {missing}: rejected (the gate fails closed)")
            elif b - a > limit + 1e-9:
                ok = False
                reasons.append(f"{name}: {label} {b:.3f} -> {a:.3f} drops more than the allowed {limit}: rejected")
            else:
                reasons.append(f"{name}: {label} {b:.3f} -> {a:.3f}")
    return ok, reasons
