"""Review one photograph: the prediction with overlays, and the clinician's correction.

Pictures come from the prediction's display-size derivatives (:mod:`feedback.display`), so a page run never decodes
a 12-megapixel photograph; the full-size photograph and masks are read only for the zoomed editor and for saving.

Corrections are edits in photograph coordinates (:class:`webapp.masks.Edit`): the whole photograph or a zoomed
region (up to 16 screen pixels per photo pixel), one lesion layer at a time, with every layer's edits drawn under
the canvas. The draft (grade, ungradable, comment, edits) lives in ``st.session_state`` and in the database
(``review_drafts``), so a rerun, a layer switch, a failed save or a browser refresh loses nothing; it is deleted in
the same transaction that saves the annotation.

Keyboard: 0-4 grade, U ungradable, A accept, S save, N / P next / previous image, Z undo the last edit.
"""

from __future__ import annotations

import io
from typing import Any

import cv2
import numpy as np
import streamlit as st
from PIL import Image as PILImage

from db import repository
from drgnet.inference import render_overlay
from drgnet.labels import GRADE_NAMES, LESION_COLOURS, LESION_NAMES, LESIONS
from webapp import auth
from webapp.masks import (
    ERASE_RGB,
    PAINT_RGB,
    Edit,
    apply_edits,
    canvas_size,
    edit_from_canvas,
    region_box,
    strokes_from_canvas,
    strokes_full,
)
from webapp.services import (
    Correction,
    after_annotation,
    data_dir,
    derivatives_enabled,
    display_cache,
    display_pictures,
    full_photo,
    predicted_masks,
    prefetch,
    save_correction,
    sessions,
)
from webapp.views.worklist import ORDER_KEY, REVIEW_KEY

CANVAS_WIDTH = 512
FLASH_KEY = "review_flash"
DRAFTS_KEY = "review_drafts"
#: Images this browser session saved an annotation for (the grader's counter).
COUNTER_KEY = "reviewed_count"
WHOLE, REGION = "Whole photograph", "Zoomed region"
REGION_SIDES = [16, 32, 64, 128, 256, 512]


# ------------------------------------------------------------------------------------------------------------ draft


def _draft(user_id: int, image_id: int) -> dict[str, Any]:
    drafts = st.session_state.setdefault(DRAFTS_KEY, {})
    if image_id not in drafts:
        with sessions()() as session:
            stored = repository.get_draft(session, user_id, image_id)
        drafts[image_id] = _from_doc(stored or {})
    return drafts[image_id]


def _from_doc(doc: dict[str, Any]) -> dict[str, Any]:
    draft: dict[str, Any] = {"edits": [], "live": None, "gen": 0}
    for key in ("grade", "ungradable", "comment"):
        if key in doc:
            draft[key] = doc[key]
    try:
        draft["edits"] = [Edit.from_doc(e) for e in doc.get("edits", [])]
    except Exception:  # a draft the app cannot read is dropped rather than blocking the page
        draft["edits"] = []
    return draft


def _to_doc(draft: dict[str, Any]) -> dict[str, Any]:
    doc = {k: draft[k] for k in ("grade", "ungradable", "comment") if k in draft}
    doc["edits"] = [e.to_doc() for e in _all_edits(draft)]
    return doc


def _persist(user_id: int, image_id: int) -> None:
    draft = _draft(user_id, image_id)
    try:
        with sessions().begin() as session:
            repository.save_draft(session, user_id, image_id, _to_doc(draft))
    except Exception as exc:  # the draft is still in this session; only a refresh would lose it
        st.session_state["review_draft_error"] = str(exc)


def _all_edits(draft: dict[str, Any]) -> list[Edit]:
    return draft["edits"] + ([draft["live"]] if draft["live"] is not None else [])


def _commit_live(user_id: int, image_id: int) -> None:
    # The layer or region changed: the current canvas's strokes join the draft and a fresh canvas is shown.
    # An empty canvas is kept (same key, new background): remounting it would drop strokes drawn meanwhile.
    draft = _draft(user_id, image_id)
    if draft["live"] is not None:
        draft["edits"].append(draft["live"])
        draft["live"] = None
        draft["gen"] += 1


def _undo(user_id: int, image_id: int) -> None:
    draft = _draft(user_id, image_id)
    if draft["live"] is not None:
        draft["live"] = None
    elif draft["edits"]:
        draft["edits"].pop()
    draft["gen"] += 1
    _persist(user_id, image_id)


def _set_field(user_id: int, image_id: int, field: str, key: str) -> None:
    if key not in st.session_state:
        # The widget is gone (a save or page change removed it before its last change arrived): nothing to keep.
        # Reading it would raise KeyError in Streamlit's callback and leave the clinician a blank page.
        return
    _draft(user_id, image_id)[field] = st.session_state[key]
    _persist(user_id, image_id)


def _set_grade(user_id: int, image_id: int, grade: int) -> None:
    st.session_state[f"rv_grade_{image_id}"] = grade
    st.session_state[f"rv_ungradable_{image_id}"] = False
    _draft(user_id, image_id).update(grade=grade, ungradable=False)
    _persist(user_id, image_id)


def _toggle_ungradable(user_id: int, image_id: int) -> None:
    key = f"rv_ungradable_{image_id}"
    st.session_state[key] = not st.session_state.get(key, False)
    _draft(user_id, image_id)["ungradable"] = st.session_state[key]
    _persist(user_id, image_id)


def _drop_draft(image_id: int) -> None:
    drafts = st.session_state.setdefault(DRAFTS_KEY, {})
    drafts.pop(image_id, None)
    for key in [k for k in st.session_state if isinstance(k, str) and k.endswith(f"_{image_id}")]:
        del st.session_state[key]


# ------------------------------------------------------------------------------------------------------- navigation


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


def _regions(masks: np.ndarray, visible: list[str], scale: float) -> list[tuple[str, int, int, int]]:
    """Lesion regions (lesion, centre x, centre y in photo pixels, display area), smallest first."""
    out = []
    for name in visible:
        k = LESIONS.index(name)
        n, _, stats, centroids = cv2.connectedComponentsWithStats(masks[k].astype(np.uint8), connectivity=8)
        for j in range(1, n):
            cx, cy = centroids[j]
            out.append((name, int(cx * scale), int(cy * scale), int(stats[j, cv2.CC_STAT_AREA])))
    return sorted(out, key=lambda r: (r[3], r[0]))[:200]


def _step_region(image_id: int, regions: list[tuple[str, int, int, int]], step: int) -> None:
    if not regions:
        return
    key = f"rv_region_i_{image_id}"
    i = (st.session_state.get(key, -1) + step) % len(regions)
    st.session_state[key] = i
    st.session_state[f"rv_cx_{image_id}"], st.session_state[f"rv_cy_{image_id}"] = regions[i][1], regions[i][2]
    st.session_state[f"rv_mode_{image_id}"] = REGION


# ------------------------------------------------------------------------------------------------------------- page


def review_page() -> None:
    user = auth.require_user()
    flash = st.session_state.pop(FLASH_KEY, None)
    if flash:
        st.success(flash)
    image_id = st.session_state.get(REVIEW_KEY)
    if image_id is None and str(st.query_params.get("image", "")).isdigit():
        # A browser refresh starts a new session: the address says which image was open (its draft is in the DB).
        image_id = st.session_state[REVIEW_KEY] = int(st.query_params["image"])
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

    if st.query_params.get("image") != str(image_id):
        st.query_params["image"] = str(image_id)
    prev_id, next_id, pos, total = _neighbours(image_id)
    st.title(f"Review: {image.original_filename}")
    nav_cols = st.columns([1, 1, 6])
    nav_cols[0].button("Previous", key="rv_prev", disabled=prev_id is None, on_click=_go, args=(prev_id,), shortcut="P")
    nav_cols[1].button("Next", key="rv_next", disabled=next_id is None, on_click=_go, args=(next_id,), shortcut="N")
    where = f"Image {pos} of {total} in the worklist · " if total else ""
    nav_cols[2].caption(
        f"{where}#{image.id} · {image.width}x{image.height} · "
        f"reviewed this session: {st.session_state.get(COUNTER_KEY, 0)}"
    )

    pictures = display_pictures(image, prediction, factory)
    dh, dw = pictures.photo.shape[:2]
    scale = image.width / dw  # photo pixels per display pixel
    draft = _draft(user.id, image_id)
    edits = _all_edits(draft)
    shown = None
    if pictures.lesions is not None:
        shown = apply_edits(pictures.lesions >= 128, edits, (0, 0, image.width, image.height), LESIONS, keep_small=True)

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
        attention = pictures.attention.astype(np.float32) / 255.0 if pictures.attention is not None else None
        overlay = render_overlay(
            pictures.photo,
            shown.astype(np.float32) if shown is not None else None,
            attention if show_attention else None,
            lesions=visible,
            opacity=opacity,
        )
        box = _region_of(image_id, image.width, image.height)
        if box is not None:  # where the zoomed editor is, on the overview
            x0, y0, x1, y1 = (round(v / scale) for v in box)
            cv2.rectangle(overlay, (x0, y0), (max(x0, x1 - 1), max(y0, y1 - 1)), (255, 255, 255), 2)
        st.image(
            overlay,
            caption="Photograph with lesion overlays (your edits included)",
            width="stretch",
            output_format="JPEG",  # a third of a PNG's bytes for a photograph, and faster to encode
        )
        st.caption(" · ".join(f":{_css(LESION_COLOURS[n])}[■] {LESION_NAMES[n]}" for n in LESIONS))
    with right:
        _prediction_panel(prediction, version_name)
        if mine:
            last = mine[-1]
            st.caption(
                f"You annotated this image {len(mine)} time(s); last: "
                f"{'ungradable' if last.grade is None else GRADE_NAMES[last.grade]} ({last.kind.value})."
            )

    st.subheader("Correction")
    regions = _regions(shown, visible, scale) if shown is not None else []
    _editor(user.id, image, prediction, pictures, shown, draft, regions)
    _correction_form(user, image, prediction, draft, next_id)
    if next_id is not None and derivatives_enabled():  # (the benchmark's baseline path had no prefetch either)
        with factory() as session:
            nxt = repository.latest_prediction(session, next_id)
        if nxt is None or ("display", nxt.id) not in display_cache:
            prefetch(next_id, factory)


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
    # Static tables: an interactive data grid costs the browser more than these few numbers are worth per image.
    st.table(
        {
            "Grade": [f"{g} {GRADE_NAMES[g]}" for g in GRADE_NAMES],
            "Probability": [f"{float(p):.3f}" for p in prediction.probabilities],
        },
        border="horizontal",
        hide_index=True,
    )
    st.table(
        {
            "Lesion": [LESION_NAMES[n] for n in LESIONS],
            "Regions": [summary.get(n, {}).get("count", 0) for n in LESIONS],
            "Area (% of field)": [round(100 * summary.get(n, {}).get("area_fraction", 0.0), 3) for n in LESIONS],
            "Peak probability": [summary.get(n, {}).get("max_probability", 0.0) for n in LESIONS],
        },
        border="horizontal",
        hide_index=True,
    )


# ----------------------------------------------------------------------------------------------------------- editor


def _region_of(image_id: int, width: int, height: int) -> tuple[int, int, int, int] | None:
    """The photo box of the zoomed editor, or None when the whole photograph is edited."""
    if st.session_state.get(f"rv_mode_{image_id}", WHOLE) != REGION:
        return None
    side = int(st.session_state.get(f"rv_side_{image_id}", 64))
    cx = int(st.session_state.get(f"rv_cx_{image_id}", width // 2))
    cy = int(st.session_state.get(f"rv_cy_{image_id}", height // 2))
    return region_box(cx, cy, side, width, height)


def _editor(
    user_id: int,
    image: Any,
    prediction: Any,
    pictures: Any,
    shown: np.ndarray | None,
    draft: dict[str, Any],
    regions: list[tuple[str, int, int, int]],
) -> None:
    if shown is None or prediction is None:
        st.caption("Lesion editing needs a prediction to start from; you can still grade the photograph.")
        return
    from streamlit_drawable_canvas import st_canvas

    image_id, w, h = image.id, image.width, image.height
    commit = {"on_change": _commit_live, "args": (user_id, image_id)}
    cols = st.columns([3, 2, 2])
    layer = cols[0].radio(
        "Lesion layer to edit",
        list(LESIONS),
        format_func=lambda n: LESION_NAMES[n],
        horizontal=True,
        key=f"rv_layer_{image_id}",
        **commit,
    )
    tool = cols[1].radio("Tool", ["Paint", "Erase"], horizontal=True, key=f"rv_tool_{image_id}")
    mode_cols = st.columns([2, 1, 1, 1, 2, 2])
    mode = mode_cols[0].radio("Edit", [WHOLE, REGION], horizontal=True, key=f"rv_mode_{image_id}", **commit)
    # One brush per mode: a photo pixel is the natural brush when zoomed, two for the whole photograph.
    zoomed = mode == REGION
    brush = cols[2].slider(
        "Brush (photo pixels)", 1, 64, 1 if zoomed else 2, key=f"rv_brush_{'r' if zoomed else 'w'}_{image_id}"
    )
    if mode == REGION:
        st.session_state.setdefault(f"rv_side_{image_id}", 64)
        st.session_state.setdefault(f"rv_cx_{image_id}", w // 2)
        st.session_state.setdefault(f"rv_cy_{image_id}", h // 2)
        mode_cols[1].selectbox("Region (photo px)", REGION_SIDES, key=f"rv_side_{image_id}", **commit)
        mode_cols[2].number_input("Centre x", 0, w - 1, key=f"rv_cx_{image_id}", **commit)
        mode_cols[3].number_input("Centre y", 0, h - 1, key=f"rv_cy_{image_id}", **commit)
    for col, label, step in ((mode_cols[4], "Previous lesion region", -1), (mode_cols[5], "Next lesion region", 1)):
        col.button(
            label,
            key=f"rv_r{step}_{image_id}",
            on_click=_step_lesion,
            args=(user_id, image_id, regions, step),
            disabled=not regions,
        )

    box = _region_of(image_id, w, h) or (0, 0, w, h)
    cw, ch = canvas_size(box, CANVAS_WIDTH)
    zoom = cw / (box[2] - box[0])  # screen pixels per photo pixel
    background = _canvas_background(image, prediction, pictures, draft["edits"], box, (cw, ch), layer)
    result = st_canvas(
        stroke_width=max(1, round(brush * zoom)),
        stroke_color="#{:02x}{:02x}{:02x}".format(*(PAINT_RGB if tool == "Paint" else ERASE_RGB)),
        background_image=_jpeg(background),
        width=cw,
        height=ch,
        drawing_mode="freedraw",
        return_image_data=True,
        key=f"canvas_{image_id}_{draft['gen']}",
    )
    try:
        strokes = strokes_from_canvas(result.image_data)
    except Exception:  # no drawing sent yet
        strokes = None
    live = edit_from_canvas(layer, box, *strokes) if strokes is not None else None
    old = draft["live"]
    if (live is None) != (old is None) or (
        live is not None and (live.box != old.box or live.layer != old.layer or not np.array_equal(live.code, old.code))
    ):
        draft["live"] = live
        _persist(user_id, image_id)
    edits = _all_edits(draft)
    edited = sorted({e.layer for e in edits}, key=LESIONS.index)
    where = (
        f"photo pixels x {box[0]}-{box[2] - 1}, y {box[1]}-{box[3] - 1} at {zoom:g} screen pixels per photo pixel"
        if mode == REGION
        else f"the whole photograph ({w}x{h}) at {zoom:.3g} screen pixels per photo pixel"
    )
    st.caption(
        f"Paint (green) adds {LESION_NAMES[layer].lower()} pixels, erase (magenta) removes them; every layer's edits "
        f"are drawn under the canvas. Editing {where}. Edits are merged onto the predicted mask at full resolution "
        f"when you save. Edited layers: {', '.join(edited) or 'none'} ({len(edits)} edit(s)). "
        f"Predicted {layer} pixels: {int((pictures.lesions[LESIONS.index(layer)] >= 128).sum())} (display)."
    )
    st.button(
        "Undo last edit",
        key=f"rv_undo_{image_id}",
        on_click=_undo,
        args=(user_id, image_id),
        disabled=not edits,
        shortcut="Z",
    )


def _jpeg(rgb: np.ndarray) -> bytes:
    # The canvas sends its background to the browser on every run: JPEG bytes are a fraction of the PNG it would make.
    buf = io.BytesIO()
    PILImage.fromarray(rgb).save(buf, format="JPEG", quality=92)
    return buf.getvalue()


def _step_lesion(user_id: int, image_id: int, regions: list[tuple[str, int, int, int]], step: int) -> None:
    _commit_live(user_id, image_id)
    _step_region(image_id, regions, step)


def _canvas_background(
    image: Any,
    prediction: Any,
    pictures: Any,
    edits: list[Edit],
    box: tuple[int, int, int, int],
    size: tuple[int, int],
    layer: str,
) -> np.ndarray:
    """The photograph under the canvas with every layer's edited masks; the edited layer drawn strongest."""
    x0, y0, x1, y1 = box
    if (x1 - x0, y1 - y0) == (image.width, image.height):
        photo = pictures.photo
        masks = apply_edits(pictures.lesions >= 128, edits, box, LESIONS)
    else:  # a zoomed region: the full-resolution pixels of that box only
        photo = np.ascontiguousarray(full_photo(image)[y0:y1, x0:x1])
        full = predicted_masks(prediction)
        masks = full[:, y0:y1, x0:x1].copy() if full is not None else np.zeros((len(LESIONS), y1 - y0, x1 - x0), bool)
        masks = apply_edits(masks, edits, box, LESIONS)
    layers = masks.astype(np.float32)
    others = render_overlay(photo, layers, None, lesions=[n for n in LESIONS if n != layer], opacity=0.25)
    out = render_overlay(others, layers, None, lesions=[layer], opacity=0.45)
    interpolation = cv2.INTER_NEAREST if size[0] >= out.shape[1] else cv2.INTER_AREA
    return cv2.resize(out, size, interpolation=interpolation)


# ----------------------------------------------------------------------------------------------------- grade + save


def _correction_form(
    user: auth.SignedIn, image: Any, prediction: Any, draft: dict[str, Any], next_id: int | None
) -> None:
    image_id = image.id
    grade_key, ungradable_key, comment_key = (
        f"rv_grade_{image_id}",
        f"rv_ungradable_{image_id}",
        f"rv_comment_{image_id}",
    )
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
        on_change=_set_field,
        args=(user.id, image_id, "grade", grade_key),
    )
    keys = st.columns(6)
    for g in GRADE_NAMES:
        keys[g].button(
            f"Grade {g}", key=f"rv_g{g}_{image_id}", on_click=_set_grade, args=(user.id, image_id, g), shortcut=str(g)
        )
    keys[5].button(
        "Ungradable", key=f"rv_u_{image_id}", on_click=_toggle_ungradable, args=(user.id, image_id), shortcut="U"
    )
    ungradable = st.checkbox(
        "Ungradable photograph (no grade)",
        key=ungradable_key,
        on_change=_set_field,
        args=(user.id, image_id, "ungradable", ungradable_key),
    )
    comment = st.text_area(
        "Comment", key=comment_key, on_change=_set_field, args=(user.id, image_id, "comment", comment_key)
    )
    cols = st.columns([1, 2, 4])
    save = cols[0].button("Save annotation", type="primary", key=f"rv_save_{image_id}", shortcut="S")
    accept = cols[1].button(
        "Accept the prediction as is",
        key=f"rv_accept_{image_id}",
        disabled=prediction is None,
        help="Grade and lesions",
        shortcut="A",
    )
    st.caption("Keys: 0-4 grade · U ungradable · A accept · S save · N / P next / previous · Z undo")
    if not (save or accept):
        return
    try:
        masks = predicted_masks(prediction) if prediction is not None else None
        if save:
            draft.update(grade=grade, ungradable=ungradable, comment=comment)
            strokes = strokes_full(_all_edits(draft), (image.height, image.width), LESIONS)
            correction = Correction(
                grade=None if ungradable else grade, ungradable=ungradable, comment=comment, strokes=strokes
            )
        else:
            correction = Correction(grade=prediction.grade, accept_masks=True)
        with sessions().begin() as session:
            annotation_id = save_correction(
                session,
                image_id=image_id,
                annotator_id=user.id,
                prediction_id=prediction.id if prediction is not None else None,
                predicted_masks=masks,
                correction=correction,
                data_dir_str=str(data_dir()),
            )
            repository.delete_draft(session, user.id, image_id)
    except Exception as exc:  # show it; the draft stays so the clinician can retry
        st.error(f"The annotation was not saved: {exc}. Your grade, comment and strokes are kept; try again.")
        return
    try:
        with sessions().begin() as session:
            after_annotation(session)
    except Exception as exc:  # the annotation is safe; retraining can be queued later
        st.warning(f"Saved, but the retraining check failed: {exc}")
    _drop_draft(image_id)
    st.session_state[COUNTER_KEY] = st.session_state.get(COUNTER_KEY, 0) + 1
    st.session_state[FLASH_KEY] = f"Annotation #{annotation_id} saved."
    _go(next_id)
    st.rerun()
