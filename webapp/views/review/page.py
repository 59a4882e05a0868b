"""The review page: which image, its overview with lesion overlays, the model's prediction, then editor and form."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import streamlit as st

import webapp.views.review.draft as drafts
import webapp.views.review.render as render
from db import repository
from drgnet.labels import GRADE_NAMES, LESION_COLOUR_NAMES, LESION_NAMES, LESIONS, is_referable, referable_probability
from webapp import auth, state
from webapp.masks import canvas_size
from webapp.services import derivatives_enabled, display_cache, display_pictures, prefetch, sessions
from webapp.state import ORDER_KEY, REVIEW_KEY
from webapp.views.review.editor import CANVAS_WIDTH, editor
from webapp.views.review.form import correction_form
from webapp.views.review.regions import clickable_overview, region_of

OVERVIEW_CAPTION = "Photograph with lesion overlays (your edits included)"


@dataclass(frozen=True)
class Loaded:
    """What one page run reads from the database about the open image."""

    image: Any
    prediction: Any
    version_name: str | None
    mine: list[Any]


def review_page() -> None:
    """The review page of the image the worklist (or the address, after a refresh) names."""
    user = auth.require_user()
    flash = st.session_state.pop(state.FLASH_KEY, None)
    if flash:
        st.success(flash)
    image_id = _open_image_id()
    if image_id is None:
        st.title("Review")
        st.info("Open an image from the worklist.")
        return
    factory = sessions()
    loaded = _load(image_id, user.id)
    if loaded is None:
        st.error(f"Image #{image_id} does not exist.")
        return
    image, prediction = loaded.image, loaded.prediction
    next_id = _header(image)
    pictures = display_pictures(image, prediction, factory)
    draft = drafts.get_draft(user.id, image_id)
    edits = drafts.all_edits(draft)
    shown = render.shown_masks(image, prediction, pictures, edits)
    left, right = st.columns([3, 2])
    with left:
        visible = _overview(user.id, image, prediction, pictures, shown, edits)
    with right:
        _prediction_panel(prediction, loaded.version_name, loaded.mine)
    st.subheader("Correction")
    editor(user.id, image, prediction, pictures, draft, render.regions(image, prediction, shown, edits, visible))
    correction_form(user, image, prediction, draft, next_id)
    if next_id is not None and derivatives_enabled():  # (the benchmark's baseline path had no prefetch either)
        with factory() as session:
            nxt = repository.latest_prediction(session, next_id)
        if nxt is None or ("display", nxt.id) not in display_cache:
            prefetch(next_id, factory, warm=_warm)


def _warm(image: Any, prediction: Any, pictures: Any) -> None:
    render.warm(image, prediction, pictures, canvas_size((0, 0, image.width, image.height), CANVAS_WIDTH))


def _open_image_id() -> int | None:
    image_id = st.session_state.get(REVIEW_KEY)
    if image_id is None and str(st.query_params.get("image", "")).isdigit():
        # A browser refresh starts a new session: the address says which image was open (its draft is in the DB).
        image_id = st.session_state[REVIEW_KEY] = int(st.query_params["image"])
    if image_id is None:
        order = st.session_state.get(ORDER_KEY) or []
        if order:
            image_id = st.session_state[REVIEW_KEY] = order[0]
    return image_id


def _load(image_id: int, user_id: int) -> Loaded | None:
    with sessions()() as session:
        image = repository.get_image(session, image_id)
        if image is None:
            return None
        prediction = repository.latest_prediction(session, image_id)
        version = prediction.model_version if prediction is not None else None
        version_name = version.name if version is not None else (prediction.model_name if prediction else None)
        mine = repository.annotations_for_image(session, image_id, annotator_id=user_id)
    return Loaded(image, prediction, version_name, mine)


def _header(image: Any) -> int | None:
    """Title, previous / next and the position in the worklist; returns the next image's id."""
    if st.query_params.get("image") != str(image.id):
        st.query_params["image"] = str(image.id)
    prev_id, next_id, pos, total = drafts.neighbours(image.id)
    st.title(f"Review: {image.original_filename}")
    nav_cols = st.columns([1, 1, 6])
    nav_cols[0].button(
        "Previous", key="rv_prev", disabled=prev_id is None, on_click=drafts.go, args=(prev_id,), shortcut="P"
    )
    nav_cols[1].button(
        "Next", key="rv_next", disabled=next_id is None, on_click=drafts.go, args=(next_id,), shortcut="N"
    )
    where = f"Image {pos} of {total} in the worklist · " if total else ""
    nav_cols[2].caption(
        f"{where}#{image.id} · {image.width}x{image.height} · "
        f"reviewed this session: {st.session_state.get(state.COUNTER_KEY, 0)}"
    )
    return next_id


def _overview(
    user_id: int, image: Any, prediction: Any, pictures: Any, shown: np.ndarray | None, edits: list[Any]
) -> list[str]:
    """The photograph with overlays (clickable while the zoomed editor is on); returns the visible lesions."""
    image_id = image.id
    ctl = st.columns([3, 1, 2])
    visible = ctl[0].multiselect(
        "Lesion overlays",
        list(LESIONS),
        default=list(LESIONS),
        format_func=lambda n: LESION_NAMES[n],
        key=f"rv_visible_{image_id}",
    )
    show_attention = ctl[1].toggle("Attention", key=f"rv_attention_{image_id}")
    opacity = ctl[2].slider("Opacity", 0.0, 1.0, 0.5, 0.05, key=f"rv_opacity_{image_id}")
    box = region_of(image_id, image.width, image.height)
    rgb, jpeg = render.overview(
        image, prediction, pictures, shown, edits, (tuple(visible), show_attention, opacity), box
    )
    if box is None:
        st.image(jpeg, caption=OVERVIEW_CAPTION, width="stretch")
    else:  # the zoomed editor's frame drawn on a picture that moves it where it is clicked
        clickable_overview(rgb, user_id, image, OVERVIEW_CAPTION)
    st.caption(" · ".join(f":{LESION_COLOUR_NAMES[n]}[■] {LESION_NAMES[n]}" for n in LESIONS))
    return visible


def _prediction_panel(prediction: Any, version_name: str | None, mine: list[Any]) -> None:
    st.subheader("Model prediction")
    if prediction is None:
        st.info("No prediction yet: no model was active when this photograph was uploaded.")
        return
    referable = referable_probability(prediction.probabilities)
    st.metric("Predicted grade", f"{prediction.grade} · {GRADE_NAMES[prediction.grade]}")
    st.write(
        f"**Referable DR:** {'yes' if is_referable(prediction.grade) else 'no'} (probability {referable:.0%}) · "
        f"**Model:** {version_name or 'unknown'}"
    )
    summary = prediction.lesion_summary or {}
    if summary.get("_gradable") is False:  # the screening command's image-quality verdict
        reasons = str(summary.get("_quality_reasons") or "").replace(",", ", ") or "quality check"
        st.warning(f"Screening flagged this photograph as possibly ungradable: {reasons}.")
    # Markdown tables: st.table converts through pandas and Arrow on every run (and imports pandas on the first).
    st.markdown(
        _table(
            ["Grade", "Probability"],
            [
                [f"{g} {GRADE_NAMES[g]}", f"{float(p):.3f}"]
                for g, p in zip(GRADE_NAMES, prediction.probabilities, strict=True)
            ],
        )
    )
    st.markdown(
        _table(
            ["Lesion", "Regions", "Area (% of field)", "Peak probability"],
            [
                [
                    LESION_NAMES[n],
                    summary.get(n, {}).get("count", 0),
                    round(100 * summary.get(n, {}).get("area_fraction", 0.0), 3),
                    summary.get(n, {}).get("max_probability", 0.0),
                ]
                for n in LESIONS
            ],
        )
    )
    if mine:
        last = mine[-1]
        st.caption(
            f"You annotated this image {len(mine)} time(s); last: "
            f"{'ungradable' if last.grade is None else GRADE_NAMES[last.grade]} ({last.kind.value})."
        )


def _table(header: list[str], rows: list[list[Any]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    return "\n".join(lines + ["| " + " | ".join(str(v) for v in row) + " |" for row in rows])
