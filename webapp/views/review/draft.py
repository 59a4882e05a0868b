"""The clinician's unsaved correction of one image (grade, ungradable, comment, edits) and moving between images.

The draft lives in ``st.session_state`` (fast) and in the database's ``review_drafts`` (a refresh reads it back).
"""

from __future__ import annotations

from typing import Any

import streamlit as st

from db import repository
from webapp.masks import Edit
from webapp.services import sessions
from webapp.state import DRAFTS_KEY, ERROR_KEY, ORDER_KEY, REVIEW_KEY

#: Widgets whose values callbacks also set (grade and ungradable by keys, the region by a click or a lesion step).
SETTABLE = ("grade", "ungradable", "mode", "cx", "cy")
#: The region widgets' values; grade and ungradable live in the draft.
VIEW_FIELDS = ("mode", "cx", "cy")


def widget_key(name: str, image_id: int) -> str:
    """The key of a widget in :data:`SETTABLE`: renamed each time a callback sets a value (see :func:`renew`).

    A browser sends every widget's value with each rerun it asks for, and asks for reruns of its own (the drawing
    canvas reports itself after each page load). A rerun asked for before the browser saw a value a callback set
    carries the old value, which Streamlit takes for the clinician's change. So these widgets never get their value
    through ``st.session_state``: each is drawn with the draft's (or the view's) value as its default, and a callback
    that sets one renames them all. A new key is a new widget, which shows its default whatever the browser knew
    before; a stale report under the old key is ignored (:func:`set_field`).
    """
    return f"rv_{name}{st.session_state.get(f'rv_gen_{image_id}', 0)}_{image_id}"


def renew(image_id: int) -> None:
    """Rename the :data:`SETTABLE` widgets: the next run draws them anew with the values now in the draft and view."""
    st.session_state[f"rv_gen_{image_id}"] = st.session_state.get(f"rv_gen_{image_id}", 0) + 1


def view(image_id: int) -> dict[str, Any]:
    """The zoomed editor's mode and centre (:data:`VIEW_FIELDS`) as last set by a widget or a callback."""
    return st.session_state.setdefault(f"rv_view_{image_id}", {})


def set_view(image_id: int, **values: Any) -> None:
    """Set the region from a callback (a click on the overview, a lesion step)."""
    view(image_id).update(values)
    renew(image_id)


def is_current(field: str, image_id: int, key: str) -> bool:
    """Whether a widget's report belongs to the widget drawn now (not to a renamed one or a removed one)."""
    if key not in st.session_state:
        # The widget is gone (a save or page change removed it before its last change arrived): nothing to keep.
        # Reading it would raise KeyError in Streamlit's callback and leave the clinician a blank page.
        return False
    # A renamed widget's old self (see widget_key): a browser that had not seen the rename yet reported its old
    # value with a later rerun, which Streamlit takes for a change. It would put back the grade a key replaced.
    return field not in SETTABLE or key == widget_key(field, image_id)


def set_view_field(user_id: int, image_id: int, field: str, key: str) -> None:
    """Callback of a region widget (mode, centre): the view follows it, and the canvas's strokes join the draft."""
    if is_current(field, image_id, key):
        view(image_id)[field] = st.session_state[key]
        commit_live(user_id, image_id)


def get_draft(user_id: int, image_id: int) -> dict[str, Any]:
    """This session's draft of an image, read from the database the first time (after a refresh)."""
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
    doc["edits"] = [e.to_doc() for e in all_edits(draft)]
    return doc


def persist(user_id: int, image_id: int) -> None:
    """Store the draft in the database, where a refreshed browser finds it."""
    draft = get_draft(user_id, image_id)
    try:
        with sessions().begin() as session:
            repository.save_draft(session, user_id, image_id, _to_doc(draft))
    except Exception as exc:  # the draft is still in this session; only a refresh would lose it
        st.session_state[ERROR_KEY] = str(exc)


def all_edits(draft: dict[str, Any]) -> list[Edit]:
    """The draft's committed edits and the canvas's current one."""
    return draft["edits"] + ([draft["live"]] if draft["live"] is not None else [])


def commit_live(user_id: int, image_id: int) -> None:
    """The layer or region changed: the current canvas's strokes join the draft and a fresh canvas is shown."""
    # An empty canvas is kept (same key, new background): remounting it would drop strokes drawn meanwhile.
    draft = get_draft(user_id, image_id)
    if draft["live"] is not None:
        draft["edits"].append(draft["live"])
        draft["live"] = None
        draft["gen"] += 1


def undo(user_id: int, image_id: int) -> None:
    """Drop the canvas's strokes, or else the last committed edit."""
    draft = get_draft(user_id, image_id)
    if draft["live"] is not None:
        draft["live"] = None
    elif draft["edits"]:
        draft["edits"].pop()
    draft["gen"] += 1
    persist(user_id, image_id)


def set_field(user_id: int, image_id: int, field: str, key: str) -> None:
    """Copy a form widget's new value into the draft."""
    if is_current(field, image_id, key):
        get_draft(user_id, image_id)[field] = st.session_state[key]
        persist(user_id, image_id)


def set_grade(user_id: int, image_id: int, grade: int) -> None:
    """A grade key (0-4): the grade, and the photograph is gradable."""
    get_draft(user_id, image_id).update(grade=grade, ungradable=False)
    renew(image_id)
    persist(user_id, image_id)


def toggle_ungradable(user_id: int, image_id: int) -> None:
    """The U key."""
    draft = get_draft(user_id, image_id)
    draft["ungradable"] = not draft.get("ungradable", False)
    renew(image_id)
    persist(user_id, image_id)


def drop_draft(image_id: int) -> None:
    """Forget an image's draft and widget values in this session (its annotation was saved)."""
    drafts = st.session_state.setdefault(DRAFTS_KEY, {})
    drafts.pop(image_id, None)
    for key in [k for k in st.session_state if isinstance(k, str) and k.endswith(f"_{image_id}")]:
        del st.session_state[key]


def neighbours(image_id: int) -> tuple[int | None, int | None, int, int]:
    """Previous and next image of the worklist, this image's position (1-based) and the worklist's length."""
    order = st.session_state.get(ORDER_KEY) or []
    if image_id not in order:
        return None, None, 0, len(order)
    i = order.index(image_id)
    prev_id = order[i - 1] if i > 0 else None
    next_id = order[i + 1] if i + 1 < len(order) else None
    return prev_id, next_id, i + 1, len(order)


def go(image_id: int | None) -> None:
    """Open another image on the next run (None: stay)."""
    if image_id is not None:
        st.session_state[REVIEW_KEY] = image_id
