"""Which part of the photograph the zoomed editor shows: a box of photo pixels, picked on the overview or stepped to.

The box's mode and centre are the view's (:func:`webapp.views.review.draft.view`), which the editor's widgets show
and change; a click on the overview or a lesion step moves the centre and switches the editor to the region (and
renames those widgets, see :func:`webapp.views.review.draft.widget_key`). The side is a plain widget value.
"""

from __future__ import annotations

from functools import partial
from typing import Any

import cv2
import numpy as np
import streamlit as st

from drgnet.labels import LESIONS
from webapp.masks import photo_point, region_box
from webapp.views.review.draft import commit_live, set_view, view

WHOLE, REGION = "Whole photograph", "Zoomed region"
REGION_SIDES = [16, 32, 64, 128, 256, 512]
DEFAULT_SIDE = 64
#: (lesion, centre x, centre y in photo pixels, area in display pixels)
Region = tuple[str, int, int, int]


def region_of(image_id: int, width: int, height: int) -> tuple[int, int, int, int] | None:
    """The photo box of the zoomed editor, or None when the whole photograph is edited."""
    where = view(image_id)
    if where.get("mode", WHOLE) != REGION:
        return None
    side = int(st.session_state.get(f"rv_side_{image_id}", DEFAULT_SIDE))
    cx, cy = int(where.get("cx", width // 2)), int(where.get("cy", height // 2))
    return region_box(cx, cy, side, width, height)


def lesion_regions(masks: np.ndarray, visible: list[str], scale: float) -> list[Region]:
    """Lesion regions of the shown (display-size) masks, smallest first (the ones hardest to find by eye)."""
    out = []
    for name in visible:
        k = LESIONS.index(name)
        n, _, stats, centroids = cv2.connectedComponentsWithStats(masks[k].astype(np.uint8), connectivity=8)
        for j in range(1, n):
            cx, cy = centroids[j]
            out.append((name, int(cx * scale), int(cy * scale), int(stats[j, cv2.CC_STAT_AREA])))
    return sorted(out, key=lambda r: (r[3], r[0]))[:200]


def _centre_on(image_id: int, x: int, y: int) -> None:
    set_view(image_id, cx=x, cy=y, mode=REGION)


def step_lesion(user_id: int, image_id: int, regions: list[Region], step: int) -> None:
    """Callback of "Previous / Next lesion region": the zoomed editor moves to the next region in that direction."""
    if not regions:
        return
    commit_live(user_id, image_id)
    key = f"rv_region_i_{image_id}"
    i = (st.session_state.get(key, -1) + step) % len(regions)
    st.session_state[key] = i
    _centre_on(image_id, regions[i][1], regions[i][2])


def pick_on_overview(user_id: int, image_id: int, key: str, width: int, height: int) -> None:
    """Callback of a click on the overview: the zoomed editor moves to the photo pixel under the click."""
    point = photo_point(st.session_state.get(key) or {}, width, height)
    if point is None:
        return
    commit_live(user_id, image_id)
    _centre_on(image_id, *point)


def overview_key(image_id: int) -> str:
    """Widget key of the clickable overview."""
    return f"rv_pick_{image_id}"


def mark_region(overview: np.ndarray, box: tuple[int, int, int, int], scale: float) -> None:
    """Draw the zoomed editor's box (photo pixels) on the overview (display pixels, ``scale`` photo pixels each)."""
    x0, y0, x1, y1 = (round(v / scale) for v in box)
    cv2.rectangle(overview, (x0, y0), (max(x0, x1 - 1), max(y0, y1 - 1)), (255, 255, 255), 2)


def clickable_overview(overview: np.ndarray, user_id: int, image: Any, caption: str) -> None:
    """The overview as a picture that moves the zoomed region to where it is clicked."""
    from streamlit_image_coordinates import streamlit_image_coordinates

    key = overview_key(image.id)
    streamlit_image_coordinates(
        overview,
        key=key,
        width="stretch",
        image_format="JPEG",
        jpeg_quality=90,
        cursor="crosshair",
        on_click=partial(pick_on_overview, user_id, image.id, key, image.width, image.height),
    )
    st.caption(f"{caption} · click a spot to zoom the editor there")
