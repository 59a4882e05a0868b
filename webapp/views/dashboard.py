"""Dashboard: how often the experts agree with the model, who corrected what, and how often experts agree."""

from __future__ import annotations

import math
from collections import Counter, defaultdict
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import streamlit as st

from db import repository
from drgnet.labels import GRADE_NAMES
from drgnet.metrics import referable_sensitivity_specificity
from webapp import auth
from webapp.services import export_labels, sessions
from webapp.stats import annotator_pairs, confusion, quadratic_kappa, reference_comparison

MAX_IMAGES = 5000


def models_against_experts(rows: list[tuple[str, bool, int, int]]) -> pd.DataFrame:
    """Per model (shadow ones included): how its grades compare with the experts' current grades."""
    by_model: dict[tuple[str, bool], list[tuple[int, int]]] = defaultdict(list)
    for model, shadow, expert, predicted in rows:
        by_model[(model, shadow)].append((expert, predicted))
    table = []
    for (model, shadow), pairs in sorted(by_model.items()):
        kappa = quadratic_kappa(pairs)
        expert, predicted = zip(*pairs, strict=True)
        sensitivity, specificity = referable_sensitivity_specificity(np.array(expert), np.array(predicted))
        table.append(
            {
                "Model": model,
                "Predictions": "shadow (not shown to clinicians)" if shadow else "served",
                "Images compared": len(pairs),
                "Quadratic weighted kappa": None if kappa is None else round(kappa, 3),
                "Exact agreement": round(sum(e == p for e, p in pairs) / len(pairs), 3),
                "Referable sensitivity": None if math.isnan(sensitivity) else round(sensitivity, 3),
                "Referable specificity": None if math.isnan(specificity) else round(specificity, 3),
            }
        )
    return pd.DataFrame(table)


def _models_against_experts() -> None:
    with sessions()() as session:
        rows = repository.expert_model_grades(session)
    if not rows:
        return
    st.subheader("Models against the experts")
    st.caption(
        "Every model that graded reviewed photographs, shadow predictions included (a candidate screened with "
        "`drgnet screen --db --checkpoint ...`): the same images, the experts' current grades."
    )
    st.dataframe(models_against_experts(rows), hide_index=True, width="stretch")


@dataclass
class _Figures:
    """What the dashboard counts from the current annotations of the images in the review queue."""

    model_pairs: list[tuple[int, int]] = field(default_factory=list)  # (expert grade, model grade)
    per_annotator: dict[str, Counter] = field(default_factory=lambda: defaultdict(Counter))
    grades_by_image: dict[int, dict[str, int]] = field(default_factory=dict)
    reference: dict[int, int] = field(default_factory=dict)  # imported reference labels, kept apart from clinicians
    model_grades: dict[int, int] = field(default_factory=dict)


def _gather(user_id: int) -> _Figures:
    figures = _Figures()
    with sessions()() as session:
        for row in repository.review_queue(session, user_id, limit=MAX_IMAGES):
            if row.annotation_count == 0:
                continue
            if row.prediction is not None:
                figures.model_grades[row.image.id] = row.prediction.grade
            for ann in repository.annotations_for_image(session, row.image.id, current_only=True):
                if ann.imported:
                    if ann.grade is not None:
                        figures.reference[row.image.id] = ann.grade
                    continue
                name = ann.annotator.username
                stats = figures.per_annotator[name]
                stats["annotations"] += 1
                pred = ann.based_on_prediction or row.prediction
                if ann.grade is None:
                    stats["ungradable"] += 1
                    continue
                figures.grades_by_image.setdefault(row.image.id, {})[name] = ann.grade
                if pred is not None:
                    figures.model_pairs.append((ann.grade, pred.grade))
                    stats["grade changed"] += int(ann.grade != pred.grade)
                stats["with lesion masks"] += int(bool(ann.mask_hashes))
    return figures


def dashboard_page() -> None:
    user = auth.require_user()
    st.title("Dashboard")
    figures = _gather(user.id)
    model_pairs, per_annotator, grades_by_image = figures.model_pairs, figures.per_annotator, figures.grades_by_image
    if user.is_admin:
        _export_panel(user.id)
    if figures.reference:
        _reference_section(figures.reference, figures.model_grades, grades_by_image)
    if not per_annotator:
        st.info("No annotations yet: agreement figures appear once clinicians review images.")
        return

    st.subheader("Model and experts")
    kappa = quadratic_kappa(model_pairs)
    agree = sum(a == b for a, b in model_pairs) / len(model_pairs) if model_pairs else 0.0
    c1, c2, c3 = st.columns(3)
    c1.metric("Graded images compared", len(model_pairs))
    c2.metric("Quadratic weighted kappa", "n/a" if kappa is None else f"{kappa:.3f}")
    c3.metric("Exact agreement", f"{agree:.0%}")
    labels = [f"{g} {GRADE_NAMES[g]}" for g in GRADE_NAMES]
    st.caption("Confusion matrix: rows are the experts' grades, columns the model's.")
    st.dataframe(pd.DataFrame(confusion(model_pairs), index=labels, columns=labels), width="stretch")

    _models_against_experts()

    st.subheader("Corrections per annotator")
    st.dataframe(
        pd.DataFrame(
            [
                {
                    "Annotator": name,
                    "Annotations": c["annotations"],
                    "Grade changed": c["grade changed"],
                    "With lesion masks": c["with lesion masks"],
                    "Ungradable": c["ungradable"],
                }
                for name, c in sorted(per_annotator.items())
            ]
        ),
        hide_index=True,
        width="stretch",
    )

    st.subheader("Agreement between annotators")
    pairs = annotator_pairs(grades_by_image)
    if not pairs:
        st.caption("No image has been graded by more than one annotator yet.")
        return
    kappa2 = quadratic_kappa(pairs)
    d1, d2, d3 = st.columns(3)
    d1.metric("Images graded by several", sum(len(v) > 1 for v in grades_by_image.values()))
    d2.metric("Quadratic weighted kappa", "n/a" if kappa2 is None else f"{kappa2:.3f}")
    d3.metric("Exact agreement", f"{sum(a == b for a, b in pairs) / len(pairs):.0%}")


def _reference_section(
    reference: dict[int, int], model_grades: dict[int, int], clinicians: dict[int, dict[str, int]]
) -> None:
    st.subheader("Model, clinicians and the reference")
    st.caption(
        f"{len(reference)} photographs carry an imported reference grade (drgnet import-labels); "
        "the model's latest prediction and the clinicians' current grades are compared with it."
    )
    rows = reference_comparison(reference, model_grades, clinicians)
    st.dataframe(
        pd.DataFrame(
            [
                {
                    "Compared with the reference": r["rater"],
                    "Photographs": r["photographs"],
                    "Quadratic weighted kappa": "n/a" if r["kappa"] is None else f"{r['kappa']:.3f}",
                    "Exact agreement": "n/a" if r["agreement"] is None else f"{r['agreement']:.0%}",
                }
                for r in rows
            ]
        ),
        hide_index=True,
        width="stretch",
    )


def _export_panel(actor_id: int) -> None:
    """Admins export the corrected labels as a dataset into the data directory (audited)."""
    with st.expander("Export corrected labels as a dataset (admins)"):
        c1, c2, c3 = st.columns(3)
        fmt = c1.selectbox("Format", ["idrid", "csv", "coco"], key="ex_format")
        mode = c2.selectbox("Labels", ["consensus", "per-annotator"], key="ex_mode")
        since = c3.date_input("Labelled since", value=None, key="ex_since")
        if st.button("Export", key="ex_go"):
            try:
                result = export_labels(fmt, mode, since, actor_id)
            except ValueError as exc:
                st.error(str(exc))
            else:
                st.success(f"Exported {result.records} labels to {result.out} ({len(result.files)} files + manifest).")
