"""Grade, ungradable, comment and the buttons that save the correction (or accept the prediction).

Every button here acts in its callback, which Streamlit runs first thing in the run the click asks for. Code after an
``if st.button(...)`` would run later in that run, and a rerun the browser asks for meanwhile (the drawing canvas
reports itself after each page load) stops the run before it gets there: the click would be lost.
"""

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
    for key in (state.SAVE_ERROR_KEY, state.ERROR_KEY):
        error = st.session_state.pop(key, None)
        if error:
            st.error(error)
    _fields(user.id, image.id, prediction, draft)
    cols = st.columns([1, 2, 4])
    args = (user, image, prediction, next_id)
    cols[0].button(
        "Save annotation",
        type="primary",
        key=f"rv_save_{image.id}",
        shortcut="S",
        on_click=_save_correction,
        args=args,
    )
    cols[1].button(
        "Accept the prediction as is",
        key=f"rv_accept_{image.id}",
        disabled=prediction is None,
        help="Grade and lesions",
        shortcut="A",
        on_click=_accept,
        args=args,
    )
    st.caption(KEYS_HELP)


def _keys(image_id: int) -> dict[str, str]:
    return {
        "grade": drafts.widget_key("grade", image_id),
        "ungradable": drafts.widget_key("ungradable", image_id),
        "comment": f"rv_comment_{image_id}",
    }


def _fields(user_id: int, image_id: int, prediction: Any, draft: dict[str, Any]) -> None:
    keys = _keys(image_id)
    # Values come from the draft, so they survive page switches, failed saves and refreshes. Grade and ungradable
    # are drawn with the draft's value as their default (see drafts.widget_key); the comment only the clinician sets.
    grade = draft.get("grade", prediction.grade if prediction is not None else 0)
    st.session_state.setdefault(keys["comment"], draft.get("comment", ""))
    st.radio(
        "Your grade",
        list(GRADE_NAMES),
        index=list(GRADE_NAMES).index(grade),
        format_func=lambda g: f"{g} {GRADE_NAMES[g]}",
        horizontal=True,
        key=keys["grade"],
        on_change=drafts.set_field,
        args=(user_id, image_id, "grade", keys["grade"]),
    )
    cols = st.columns(6)
    for g in GRADE_NAMES:
        cols[g].button(
            f"Grade {g}",
            key=f"rv_g{g}_{image_id}",
            on_click=drafts.set_grade,
            args=(user_id, image_id, g),
            shortcut=str(g),
        )
    cols[5].button(
        "Ungradable", key=f"rv_u_{image_id}", on_click=drafts.toggle_ungradable, args=(user_id, image_id), shortcut="U"
    )
    st.checkbox(
        "Ungradable photograph (no grade)",
        value=bool(draft.get("ungradable", False)),
        key=keys["ungradable"],
        on_change=drafts.set_field,
        args=(user_id, image_id, "ungradable", keys["ungradable"]),
    )
    st.text_area(
        "Comment", key=keys["comment"], on_change=drafts.set_field, args=(user_id, image_id, "comment", keys["comment"])
    )


def _save_correction(user: auth.SignedIn, image: Any, prediction: Any, next_id: int | None) -> None:
    """Callback of "Save annotation" (S): the form's values as they are now, the draft's edits at full resolution."""
    draft = drafts.get_draft(user.id, image.id)
    for field, key in _keys(image.id).items():  # a change sent with the click itself, whatever the callbacks' order
        if drafts.is_current(field, image.id, key):
            draft[field] = st.session_state[key]
    ungradable = bool(draft.get("ungradable", False))
    grade = draft.get("grade", prediction.grade if prediction is not None else 0)

    def correction() -> Correction:
        strokes = strokes_full(drafts.all_edits(draft), (image.height, image.width), LESIONS)
        return Correction(
            grade=None if ungradable else grade,
            ungradable=ungradable,
            comment=draft.get("comment", ""),
            strokes=strokes,
        )

    _save(user, image, prediction, correction, next_id)


def _accept(user: auth.SignedIn, image: Any, prediction: Any, next_id: int | None) -> None:
    """Callback of "Accept the prediction as is" (A)."""
    if prediction is not None:
        _save(user, image, prediction, lambda: Correction(grade=prediction.grade, accept_masks=True), next_id)


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
    except Exception as exc:  # say so on the page; the draft stays so the clinician can retry
        drafts.persist(user.id, image.id)
        st.session_state[state.SAVE_ERROR_KEY] = (
            f"The annotation was not saved: {exc}. Your grade, comment and strokes are kept; try again."
        )
        return
    flash = f"Annotation #{annotation_id} saved."
    try:
        with sessions().begin() as session:
            after_annotation(session)
    except Exception as exc:  # the annotation is safe; retraining can be queued later
        flash += f" (The retraining check failed: {exc}; the annotation is stored.)"
    drafts.drop_draft(image.id)
    st.session_state[state.COUNTER_KEY] = st.session_state.get(state.COUNTER_KEY, 0) + 1
    st.session_state[state.FLASH_KEY] = flash
    drafts.go(next_id)
