"""Grade, ungradable, comment and the buttons that save the correction (or accept the prediction)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import streamlit as st

import webapp.views.review.draft as drafts
from db import repository
from drgnet.labels import GRADE_NAMES, LESIONS
from webapp import auth, state
from webapp.masks import strokes_full
from webapp.services import Correction, after_annotation, data_dir, predicted_masks, save_correction, sessions

KEYS_HELP = "Keys: 0-4 grade · U ungradable · A accept · S save · N / P next / previous · Z undo"


def correction_form(
    user: auth.SignedIn, image: Any, prediction: Any, draft: dict[str, Any], next_id: int | None
) -> None:
    """The form under the editor; a save stores the annotation, drops the draft and opens the next image."""
    grade, ungradable, comment = _fields(user.id, image.id, prediction, draft)
    cols = st.columns([1, 2, 4])
    save = cols[0].button("Save annotation", type="primary", key=f"rv_save_{image.id}", shortcut="S")
    accept = cols[1].button(
        "Accept the prediction as is",
        key=f"rv_accept_{image.id}",
        disabled=prediction is None,
        help="Grade and lesions",
        shortcut="A",
    )
    st.caption(KEYS_HELP)
    if save:
        draft.update(grade=grade, ungradable=ungradable, comment=comment)

        def correction() -> Correction:
            strokes = strokes_full(drafts.all_edits(draft), (image.height, image.width), LESIONS)
            return Correction(
                grade=None if ungradable else grade, ungradable=ungradable, comment=comment, strokes=strokes
            )

        _save(user, image, prediction, correction, next_id)
    elif accept:
        _save(user, image, prediction, lambda: Correction(grade=prediction.grade, accept_masks=True), next_id)


def _fields(user_id: int, image_id: int, prediction: Any, draft: dict[str, Any]) -> tuple[int, bool, str]:
    grade_key = drafts.widget_key("grade", image_id)
    ungradable_key = drafts.widget_key("ungradable", image_id)
    comment_key = f"rv_comment_{image_id}"
    # Widget values come from the draft, so they survive page switches, failed saves and refreshes.
    st.session_state.setdefault(grade_key, draft.get("grade", prediction.grade if prediction is not None else 0))
    st.session_state.setdefault(ungradable_key, draft.get("ungradable", False))
    st.session_state.setdefault(comment_key, draft.get("comment", ""))
    grade = st.radio(
        "Your grade",
        list(GRADE_NAMES),
        format_func=lambda g: f"{g} {GRADE_NAMES[g]}",
        horizontal=True,
        key=grade_key,
        on_change=drafts.set_field,
        args=(user_id, image_id, "grade", grade_key),
    )
    keys = st.columns(6)
    for g in GRADE_NAMES:
        keys[g].button(
            f"Grade {g}",
            key=f"rv_g{g}_{image_id}",
            on_click=drafts.set_grade,
            args=(user_id, image_id, g),
            shortcut=str(g),
        )
    keys[5].button(
        "Ungradable", key=f"rv_u_{image_id}", on_click=drafts.toggle_ungradable, args=(user_id, image_id), shortcut="U"
    )
    ungradable = st.checkbox(
        "Ungradable photograph (no grade)",
        key=ungradable_key,
        on_change=drafts.set_field,
        args=(user_id, image_id, "ungradable", ungradable_key),
    )
    comment = st.text_area(
        "Comment", key=comment_key, on_change=drafts.set_field, args=(user_id, image_id, "comment", comment_key)
    )
    return grade, ungradable, comment


def _save(
    user: auth.SignedIn, image: Any, prediction: Any, correction: Callable[[], Correction], next_id: int | None
) -> None:
    try:
        masks = predicted_masks(prediction) if prediction is not None else None
        with sessions().begin() as session:
            annotation_id = save_correction(
                session,
                image_id=image.id,
                annotator_id=user.id,
                prediction_id=prediction.id if prediction is not None else None,
                predicted_masks=masks,
                correction=correction(),
                data_dir_str=str(data_dir()),
            )
            repository.delete_draft(session, user.id, image.id)
    except Exception as exc:  # show it; the draft stays so the clinician can retry
        st.error(f"The annotation was not saved: {exc}. Your grade, comment and strokes are kept; try again.")
        return
    try:
        with sessions().begin() as session:
            after_annotation(session)
    except Exception as exc:  # the annotation is safe; retraining can be queued later
        st.warning(f"Saved, but the retraining check failed: {exc}")
    drafts.drop_draft(image.id)
    st.session_state[state.COUNTER_KEY] = st.session_state.get(state.COUNTER_KEY, 0) + 1
    st.session_state[state.FLASH_KEY] = f"Annotation #{annotation_id} saved."
    drafts.go(next_id)
    st.rerun()
