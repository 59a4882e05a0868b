"""The correction canvas: one lesion layer, the whole photograph or a zoomed region, every layer's edits underneath."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import streamlit as st

import webapp.views.review.draft as drafts
import webapp.views.review.render as render
from drgnet.labels import LESION_NAMES, LESIONS
from webapp.masks import ERASE_RGB, PAINT_RGB, canvas_size, edit_from_canvas, strokes_from_canvas
from webapp.views.review.regions import DEFAULT_SIDE, REGION, REGION_SIDES, WHOLE, Region, region_of, step_lesion

CANVAS_WIDTH = 512


@dataclass(frozen=True)
class Tools:
    """What the clinician chose above the canvas."""

    layer: str
    paint: bool
    brush: int  # photo pixels
    zoomed: bool


def editor(
    user_id: int, image: Any, prediction: Any, pictures: Any, draft: dict[str, Any], regions: list[Region]
) -> None:
    """The lesion editor of the review page (needs a prediction to start from)."""
    if pictures.lesions is None or prediction is None:
        st.caption("Lesion editing needs a prediction to start from; you can still grade the photograph.")
        return
    tools = _controls(user_id, image, regions)
    w, h = image.width, image.height
    box = region_of(image.id, w, h) or (0, 0, w, h)
    zoom = _canvas(user_id, image, prediction, pictures, draft, box, tools)
    edits = drafts.all_edits(draft)
    edited = sorted({e.layer for e in edits}, key=LESIONS.index)
    where = (
        f"photo pixels x {box[0]}-{box[2] - 1}, y {box[1]}-{box[3] - 1} at {zoom:g} screen pixels per photo pixel"
        if tools.zoomed
        else f"the whole photograph ({w}x{h}) at {zoom:.3g} screen pixels per photo pixel"
    )
    st.caption(
        f"Paint (green) adds {LESION_NAMES[tools.layer].lower()} pixels, erase (magenta) removes them; every layer's "
        f"edits are drawn under the canvas. Editing {where}. Edits are merged onto the predicted mask at full "
        f"resolution when you save. Edited layers: {', '.join(edited) or 'none'} ({len(edits)} edit(s)). "
        f"Predicted {tools.layer} pixels: {int((pictures.lesions[LESIONS.index(tools.layer)] >= 128).sum())} "
        "(display)."
    )
    st.button(
        "Undo last edit",
        key=f"rv_undo_{image.id}",
        on_click=drafts.undo,
        args=(user_id, image.id),
        disabled=not edits,
        shortcut="Z",
    )


def _controls(user_id: int, image: Any, regions: list[Region]) -> Tools:
    image_id, w, h = image.id, image.width, image.height
    commit = {"on_change": drafts.commit_live, "args": (user_id, image_id)}
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
    where = drafts.view(image_id)

    def settable(field: str) -> dict[str, Any]:  # see drafts.widget_key: drawn with the view's value as default
        key = drafts.widget_key(field, image_id)
        return {"key": key, "on_change": drafts.set_view_field, "args": (user_id, image_id, field, key)}

    modes = [WHOLE, REGION]
    mode_cols[0].radio("Edit", modes, index=modes.index(where.get("mode", WHOLE)), horizontal=True, **settable("mode"))
    zoomed = where.get("mode", WHOLE) == REGION  # (what region_of reads: the radio's change is in it already)
    # One brush per mode: a photo pixel is the natural brush when zoomed, two for the whole photograph.
    brush = cols[2].slider(
        "Brush (photo pixels)", 1, 64, 1 if zoomed else 2, key=f"rv_brush_{'r' if zoomed else 'w'}_{image_id}"
    )
    if zoomed:
        st.session_state.setdefault(f"rv_side_{image_id}", DEFAULT_SIDE)
        mode_cols[1].selectbox("Region (photo px)", REGION_SIDES, key=f"rv_side_{image_id}", **commit)
        cx, cy = int(where.get("cx", w // 2)), int(where.get("cy", h // 2))
        mode_cols[2].number_input("Centre x", 0, w - 1, cx, **settable("cx"))
        mode_cols[3].number_input("Centre y", 0, h - 1, cy, **settable("cy"))
    for col, label, step in ((mode_cols[4], "Previous lesion region", -1), (mode_cols[5], "Next lesion region", 1)):
        col.button(
            label,
            key=f"rv_r{step}_{image_id}",
            on_click=step_lesion,
            args=(user_id, image_id, regions, step),
            disabled=not regions,
        )
    return Tools(layer, tool == "Paint", brush, zoomed)


def _canvas(
    user_id: int,
    image: Any,
    prediction: Any,
    pictures: Any,
    draft: dict[str, Any],
    box: tuple[int, int, int, int],
    tools: Tools,
) -> float:
    """Show the canvas over ``box`` and keep its strokes in the draft; returns screen pixels per photo pixel."""
    from streamlit_drawable_canvas import st_canvas

    cw, ch = canvas_size(box, CANVAS_WIDTH)
    zoom = cw / (box[2] - box[0])
    background = render.canvas_background(image, prediction, pictures, draft["edits"], box, (cw, ch), tools.layer)
    result = st_canvas(
        stroke_width=max(1, round(tools.brush * zoom)),
        stroke_color="#{:02x}{:02x}{:02x}".format(*(PAINT_RGB if tools.paint else ERASE_RGB)),
        background_image=background,
        width=cw,
        height=ch,
        drawing_mode="freedraw",
        return_image_data=True,
        key=f"canvas_{image.id}_{draft['gen']}",
    )
    try:
        strokes = strokes_from_canvas(result.image_data)
    except Exception:  # no drawing sent yet
        strokes = None
    live = edit_from_canvas(tools.layer, box, *strokes) if strokes is not None else None
    old = draft["live"]
    if (live is None) != (old is None) or (
        live is not None and (live.box != old.box or live.layer != old.layer or not np.array_equal(live.code, old.code))
    ):
        draft["live"] = live
        drafts.persist(user_id, image.id)
    return zoom
