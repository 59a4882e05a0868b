"""Review one photograph: the prediction with overlays, and the clinician's correction.

Draft state (grade, ungradable, comment, strokes per lesion) lives in ``st.session_state`` keyed by image, so a
rerun, a switch of lesion layer or a failed save loses nothing; the draft is dropped only when the annotation is
saved.
"""

from __future__ import annotations

from typing import Any

import cv2
import numpy as np
import streamlit as st
from PIL import Image as PILImage

from db import repository
from drgnet.inference import render_overlay
from drgnet.labels import GRADE_NAMES, LESION_COLOURS, LESION_NAMES, LESIONS
from webapp import auth
from webapp.masks import ERASE_RGB, PAINT_RGB, merge_full, strokes_from_canvas
from webapp.services import (
    Correction,
    after_annotation,
    data_dir,
    load_maps,
    load_photo,
    save_correction,
    sessions,
)
from webapp.views.worklist import ORDER_KEY, REVIEW_KEY

CANVAS_WIDTH = 512
FLASH_KEY = "review_flash"


def _draft(image_id: int) -> dict[str, Any]:
    drafts = st.session_state.setdefault("review_drafts", {})
    return drafts.setdefault(image_id, {"base": {}, "current": {}, "gen": 0})


def _drop_draft(image_id: int) -> None:
    drafts = st.session_state.setdefault("review_drafts", {})
    old = drafts.pop(image_id, None)
    # A fresh canvas generation: a canvas of the saved draft must not hand its strokes to the next annotation.
    drafts[image_id] = {"base": {}, "current": {}, "gen": (old["gen"] + 1) if old else 0}
    for key in [k for k in st.session_state if isinstance(k, str) and k.endswith(f"_{image_id}")]:
        del st.session_state[key]


def _combine(base: tuple | None, current: tuple | None) -> tuple | None:
    """Strokes drawn later win over earlier ones: a later paint undoes an earlier erase and vice versa."""
    if base is None:
        return current
    if current is None:
        return base
    add = (base[0] & ~current[1]) | current[0]
    remove = (base[1] & ~current[0]) | current[1]
    return add, remove


def _strokes(draft: dict[str, Any]) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    out = {}
    for name in LESIONS:
        s = _combine(draft["base"].get(name), draft["current"].get(name))
        if s is not None:
            out[name] = s
    return out


def _commit_current(image_id: int) -> None:
    # Called when the lesion layer changes: the current canvas's strokes join the earlier ones, and a fresh canvas
    # (new key) is shown for the next layer.
    draft = _draft(image_id)
    for name, cur in draft["current"].items():
        draft["base"][name] = _combine(draft["base"].get(name), cur)
    draft["current"] = {}
    draft["gen"] += 1


def _neighbours(image_id: int) -> tuple[int | None, int | None, int, int]:
    order = st.session_state.get(ORDER_KEY) or []
    if image_id not in order:
        return None, None, 0, len(order)
    i = order.index(image_id)
    prev_id = order[i - 1] if i > 0 else None
    next_id = order[i + 1] if i + 1 < len(order) else None
    return prev_id, next_id, i + 1, len(order)


def _go(image_id: int | None) -> None:
    if image_id is not None:
        st.session_state[REVIEW_KEY] = image_id


def _regions(masks: np.ndarray, visible: list[str]) -> list[tuple[str, int, int, int]]:
    """Lesion regions (lesion, centre x, centre y, area), smallest first: microaneurysms are the ones to enlarge."""
    out = []
    for name in visible:
        k = LESIONS.index(name)
        n, _, stats, centroids = cv2.connectedComponentsWithStats(masks[k].astype(np.uint8), connectivity=8)
        for j in range(1, n):
            out.append((name, int(centroids[j][0]), int(centroids[j][1]), int(stats[j, cv2.CC_STAT_AREA])))
    return sorted(out, key=lambda r: (r[3], r[0]))[:200]


def _crop(image: np.ndarray, cx: int, cy: int, zoom: int, out_size: int = 384) -> np.ndarray:
    h, w = image.shape[:2]
    half = max(4, int(min(h, w) / zoom / 2))
    x0, y0 = min(max(cx - half, 0), max(w - 2 * half, 0)), min(max(cy - half, 0), max(h - 2 * half, 0))
    crop = image[y0 : y0 + 2 * half, x0 : x0 + 2 * half]
    return cv2.resize(crop, (out_size, out_size), interpolation=cv2.INTER_NEAREST)


def review_page() -> None:
    user = auth.require_user()
    flash = st.session_state.pop(FLASH_KEY, None)
    if flash:
        st.success(flash)
    image_id = st.session_state.get(REVIEW_KEY)
    if image_id is None:
        order = st.session_state.get(ORDER_KEY) or []
        if not order:
            st.title("Review")
            st.info("Open an image from the worklist.")
            return
        image_id = st.session_state[REVIEW_KEY] = order[0]

    factory = sessions()
    with factory() as session:
        image = repository.get_image(session, image_id)
        if image is None:
            st.error(f"Image #{image_id} does not exist.")
            return
        prediction = repository.latest_prediction(session, image_id)
        version = prediction.model_version if prediction is not None else None
        version_name = version.name if version is not None else (prediction.model_name if prediction else None)
        mine = repository.annotations_for_image(session, image_id, annotator_id=user.id)
    ddir = str(data_dir())

    prev_id, next_id, pos, total = _neighbours(image_id)
    st.title(f"Review: {image.original_filename}")
    nav_cols = st.columns([1, 1, 6])
    nav_cols[0].button("Previous", key="rv_prev", disabled=prev_id is None, on_click=_go, args=(prev_id,))
    nav_cols[1].button("Next", key="rv_next", disabled=next_id is None, on_click=_go, args=(next_id,))
    if total:
        nav_cols[2].caption(f"Image {pos} of {total} in the worklist · #{image.id} · {image.width}x{image.height}")

    photo = load_photo(image.id, image.sha256, image.path, ddir)
    lesion_probs = attention = None
    if prediction is not None:
        hashes = tuple(prediction.lesion_map_hashes.get(n, "") for n in LESIONS) + (
            prediction.attention_map_hash or "",
        )
        lesion_probs, attention = load_maps(prediction.id, hashes, ddir)
    predicted_masks = (lesion_probs >= 0.5) if lesion_probs is not None else None

    draft = _draft(image_id)
    strokes = _strokes(draft)
    shown_masks = None
    if predicted_masks is not None:
        shown_masks = np.stack(
            [merge_full(predicted_masks[k], *strokes.get(n, (None, None))) for k, n in enumerate(LESIONS)]
        )

    left, right = st.columns([3, 2])
    with left:
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
        overlay = render_overlay(
            photo,
            shown_masks.astype(np.float32) if shown_masks is not None else None,
            attention if show_attention else None,
            lesions=visible,
            opacity=opacity,
        )
        st.image(overlay, caption="Photograph with lesion overlays (your edits included)", width="stretch")
        st.caption(" · ".join(f":{_css(LESION_COLOURS[n])}[■] {LESION_NAMES[n]}" for n in LESIONS))
        with st.expander("Enlarged view (small lesions)", expanded=False):
            regions = _regions(shown_masks, visible) if shown_masks is not None else []
            choices = ["Centre of the photograph"] + [f"{n} at ({x}, {y}), {a} px" for n, x, y, a in regions]
            pick = st.selectbox(
                "Centre on", range(len(choices)), format_func=lambda i: choices[i], key=f"rv_zc_{image_id}"
            )
            zoom = st.slider("Zoom", 2, 16, 6, key=f"rv_zoom_{image_id}")
            cx, cy = (image.width // 2, image.height // 2) if pick == 0 else regions[pick - 1][1:3]
            st.image(_crop(overlay, cx, cy, zoom), caption=f"{zoom}x around ({cx}, {cy})")
    with right:
        _prediction_panel(prediction, version_name)
        if mine:
            last = mine[-1]
            st.caption(
                f"You annotated this image {len(mine)} time(s); last: "
                f"{'ungradable' if last.grade is None else GRADE_NAMES[last.grade]} ({last.kind.value})."
            )

    st.subheader("Correction")
    _canvas_editor(image_id, photo, shown_masks, draft)
    _correction_form(user, image_id, prediction, predicted_masks, draft, next_id, ddir)


def _css(rgb: tuple[int, int, int]) -> str:
    # Streamlit's coloured-text markdown takes named colours only; pick the nearest one.
    names = {"red": (255, 0, 0), "violet": (160, 0, 220), "orange": (255, 200, 0), "blue": (0, 150, 255)}
    return min(names, key=lambda n: sum((a - b) ** 2 for a, b in zip(names[n], rgb, strict=True)))


def _prediction_panel(prediction: Any, version_name: str | None) -> None:
    st.subheader("Model prediction")
    if prediction is None:
        st.info("No prediction yet: no model was active when this photograph was uploaded.")
        return
    referable = sum(prediction.probabilities[2:])
    st.metric("Predicted grade", f"{prediction.grade} · {GRADE_NAMES[prediction.grade]}")
    st.write(
        f"**Referable DR:** {'yes' if prediction.grade >= 2 else 'no'} (probability {referable:.0%}) · "
        f"**Model:** {version_name or 'unknown'}"
    )
    summary = prediction.lesion_summary or {}
    if summary.get("_gradable") is False:  # the screening command's image-quality verdict
        reasons = str(summary.get("_quality_reasons") or "").replace(",", ", ") or "quality check"
        st.warning(f"Screening flagged this photograph as possibly ungradable: {reasons}.")
    st.dataframe(
        {
            "Grade": [f"{g} {GRADE_NAMES[g]}" for g in GRADE_NAMES],
            "Probability": [round(float(p), 3) for p in prediction.probabilities],
        },
        hide_index=True,
        width="stretch",
    )
    st.dataframe(
        {
            "Lesion": [LESION_NAMES[n] for n in LESIONS],
            "Regions": [summary.get(n, {}).get("count", 0) for n in LESIONS],
            "Area (% of field)": [round(100 * summary.get(n, {}).get("area_fraction", 0.0), 3) for n in LESIONS],
            "Peak probability": [summary.get(n, {}).get("max_probability", 0.0) for n in LESIONS],
        },
        hide_index=True,
        width="stretch",
    )


def _canvas_editor(image_id: int, photo: np.ndarray, shown_masks: np.ndarray | None, draft: dict[str, Any]) -> None:
    if shown_masks is None:
        st.caption("Lesion editing needs a prediction to start from; you can still grade the photograph.")
        return
    from streamlit_drawable_canvas import st_canvas

    cols = st.columns([2, 1, 1])
    layer = cols[0].radio(
        "Lesion layer to edit",
        list(LESIONS),
        format_func=lambda n: LESION_NAMES[n],
        horizontal=True,
        key=f"rv_layer_{image_id}",
        on_change=_commit_current,
        args=(image_id,),
    )
    tool = cols[1].radio("Tool", ["Paint", "Erase"], horizontal=True, key=f"rv_tool_{image_id}")
    brush = cols[2].slider("Brush", 1, 40, 8, key=f"rv_brush_{image_id}")
    h, w = photo.shape[:2]
    height = max(1, round(CANVAS_WIDTH * h / w))
    k = LESIONS.index(layer)
    background = render_overlay(photo, shown_masks.astype(np.float32), None, lesions=[layer], opacity=0.45)
    result = st_canvas(
        stroke_width=brush,
        stroke_color="#{:02x}{:02x}{:02x}".format(*(PAINT_RGB if tool == "Paint" else ERASE_RGB)),
        background_image=PILImage.fromarray(background),
        width=CANVAS_WIDTH,
        height=height,
        drawing_mode="freedraw",
        return_image_data=True,
        key=f"canvas_{image_id}_{layer}_{draft['gen']}",
    )
    try:
        current = strokes_from_canvas(result.image_data)
    except Exception:  # no drawing sent yet
        current = None
    if current is not None:
        draft["current"][layer] = current
    st.caption(
        f"Paint (green) adds {LESION_NAMES[layer].lower()} pixels, erase (magenta) removes them; edits are merged onto "
        f"the predicted mask at the photograph's full resolution ({w}x{h}) when you save. "
        f"Edited layers: {', '.join(_strokes(draft)) or 'none'}. Predicted {layer} pixels: {int(shown_masks[k].sum())}."
    )


def _correction_form(
    user: auth.SignedIn,
    image_id: int,
    prediction: Any,
    predicted_masks: np.ndarray | None,
    draft: dict[str, Any],
    next_id: int | None,
    ddir: str,
) -> None:
    grade_key, ungradable_key, comment_key = (
        f"rv_grade_{image_id}",
        f"rv_ungradable_{image_id}",
        f"rv_comment_{image_id}",
    )
    # Widget values come from the draft, so they survive page switches and failed saves.
    st.session_state.setdefault(grade_key, draft.get("grade", prediction.grade if prediction is not None else 0))
    st.session_state.setdefault(ungradable_key, draft.get("ungradable", False))
    st.session_state.setdefault(comment_key, draft.get("comment", ""))
    with st.form(f"correction_{image_id}"):
        grade = st.radio(
            "Your grade",
            list(GRADE_NAMES),
            format_func=lambda g: f"{g} {GRADE_NAMES[g]}",
            horizontal=True,
            key=grade_key,
        )
        ungradable = st.checkbox("Ungradable photograph (no grade)", key=ungradable_key)
        comment = st.text_area("Comment", key=comment_key)
        save = st.form_submit_button("Save annotation", type="primary")
    accept = st.button(
        "Accept the prediction as is",
        key=f"rv_accept_{image_id}",
        disabled=prediction is None,
        help="Grade and lesions",
    )
    if not (save or accept):
        return
    if save:
        draft.update(grade=grade, ungradable=ungradable, comment=comment)
        correction = Correction(
            grade=None if ungradable else grade, ungradable=ungradable, comment=comment, strokes=_strokes(draft)
        )
    else:
        correction = Correction(grade=prediction.grade, accept_masks=True)
    try:
        with sessions().begin() as session:
            annotation_id = save_correction(
                session,
                image_id=image_id,
                annotator_id=user.id,
                prediction_id=prediction.id if prediction is not None else None,
                predicted_masks=predicted_masks,
                correction=correction,
                data_dir_str=ddir,
            )
    except Exception as exc:  # show it; the draft stays so the clinician can retry
        st.error(f"The annotation was not saved: {exc}. Your grade, comment and strokes are kept; try again.")
        return
    try:
        with sessions().begin() as session:
            after_annotation(session)
    except Exception as exc:  # the annotation is safe; retraining can be queued later
        st.warning(f"Saved, but the retraining check failed: {exc}")
    _drop_draft(image_id)
    st.session_state[FLASH_KEY] = f"Annotation #{annotation_id} saved."
    _go(next_id)
    st.rerun()
