"""The worklist: the review queue in the order a strategy chooses, with filters and counts."""

from __future__ import annotations

import streamlit as st

from db import repository
from drgnet.labels import GRADE_NAMES, normalised_entropy, referable_probability
from feedback.strategies import STRATEGIES
from webapp import auth
from webapp.services import sessions
from webapp.state import ORDER_KEY, open_review_next

QUEUE_LIMIT = 500


def worklist_page() -> None:
    user = auth.require_user()
    st.title("Worklist")
    c1, c2, c3, c4 = st.columns([2, 2, 2, 2])
    strategy_name = c1.selectbox("Order", list(STRATEGIES), key="wl_strategy")
    status = c2.selectbox("Status", ["Not reviewed by me", "Reviewed by me", "All"], key="wl_status")
    grades = c3.multiselect(
        "Predicted grade", list(GRADE_NAMES), format_func=lambda g: f"{g} {GRADE_NAMES[g]}", key="wl_grades"
    )
    with sessions()() as session:
        rows = repository.review_queue(session, user.id, limit=QUEUE_LIMIT)
    sources = sorted({r.image.source for r in rows if r.image.source})
    source = c4.selectbox("Source", ["All sources", *sources], key="wl_source")

    total, mine = len(rows), sum(r.has_my_annotation for r in rows)
    if status == "Not reviewed by me":
        rows = [r for r in rows if not r.has_my_annotation]
    elif status == "Reviewed by me":
        rows = [r for r in rows if r.has_my_annotation]
    if grades:
        rows = [r for r in rows if r.prediction is not None and r.prediction.grade in grades]
    if source != "All sources":
        rows = [r for r in rows if r.image.source == source]
    rows = STRATEGIES[strategy_name](rows)
    st.session_state[ORDER_KEY] = [r.image.id for r in rows]

    m1, m2, m3, m4 = st.columns(4)
    m1.metric("Images", total)
    m2.metric("Reviewed by me", mine)
    m3.metric("Still to review", total - mine)
    m4.metric("Shown", len(rows))
    if not rows:
        st.info("Nothing to review with these filters.")
        return
    st.button(
        "Review the first one", type="primary", key="wl_start", on_click=open_review_next, args=(rows[0].image.id,)
    )

    head = st.columns([3, 2, 1, 1, 1, 1])
    for col, text in zip(
        head, ["Photograph", "Predicted grade", "Referable", "Uncertainty", "Reviews", ""], strict=True
    ):
        col.markdown(f"**{text}**")
    for row in rows[:100]:
        cols = st.columns([3, 2, 1, 1, 1, 1])
        pred = row.prediction
        cols[0].write(f"#{row.image.id} {row.image.original_filename}")
        cols[1].write(f"{pred.grade} {GRADE_NAMES[pred.grade]}" if pred else "not graded yet")
        cols[2].write(f"{referable_probability(pred.probabilities):.0%}" if pred else "")
        cols[3].write(f"{normalised_entropy(pred.probabilities):.2f}" if pred else "")
        cols[4].write(f"{row.annotation_count}{' (mine)' if row.has_my_annotation else ''}")
        cols[5].button("Open", key=f"wl_open_{row.image.id}", on_click=open_review_next, args=(row.image.id,))
    if len(rows) > 100:
        st.caption(f"First 100 of {len(rows)} shown; narrow the filters to see the others.")
