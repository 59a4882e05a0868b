"""Upload photographs: stored (each committed at once), then graded by the active model, with per-file progress."""

from __future__ import annotations

import streamlit as st

from db import repository
from feedback.settings import may_upload
from webapp import auth, state
from webapp.services import UPLOAD_REFUSED, ingest_and_predict, sessions

ACCEPTED = ["jpg", "jpeg", "png", "tif", "tiff", "bmp", "webp", "dcm"]  # DICOM: de-identified on intake


def upload_page() -> None:
    user = auth.require_user()
    st.title("Upload photographs")
    with sessions()() as session:
        allowed = may_upload(session, repository.get_user_by_id(session, user.id))
        active = repository.active_model_version(session)
    if not allowed:
        st.info(UPLOAD_REFUSED)
        return
    if active is None:
        st.warning("No model version is active: photographs are stored and queued, but not graded.")
    else:
        st.caption(f"New photographs are graded by model version **{active.name}**.")
    with st.form("upload", clear_on_submit=True):
        files = st.file_uploader("Fundus photographs", type=ACCEPTED, accept_multiple_files=True, key="up_files")
        c1, c2 = st.columns(2)
        source = c1.text_input("Source (clinic, camera or batch)", key="up_source")
        eye = c2.selectbox("Eye", ["unknown", "left", "right"], key="up_eye")
        submitted = st.form_submit_button("Upload and grade", type="primary")
    if submitted:
        if not files:
            st.warning("Choose one or more photographs first.")
            return
        bar = st.progress(0.0, text=f"Storing and grading {len(files)} photograph(s) ...")
        stages = {"storing": "storing", "grading": "stored; grading", "done": "done"}

        def progress(done: int, total: int, name: str, stage: str) -> None:
            # Each file is committed before the model runs, so it is safe in the queue once "grading" shows.
            bar.progress(done / max(total, 1), text=f"{name}: {stages.get(stage, stage)} ({done}/{total} finished)")

        outcomes = ingest_and_predict(
            [(f.name, f.getvalue()) for f in files],
            uploaded_by_id=user.id,
            source=source,
            eye=eye,
            on_progress=progress,
        )
        bar.progress(1.0, text=f"{len(files)} file(s) processed.")
        st.session_state[state.UPLOAD_OUTCOMES_KEY] = outcomes
    outcomes = st.session_state.get(state.UPLOAD_OUTCOMES_KEY)
    if outcomes:
        good = [o for o in outcomes if o.error is None]
        bad = [o for o in outcomes if o.error is not None]
        if good:
            st.success(
                f"{len(good)} photograph(s) added to the review queue "
                f"({sum(o.created for o in good)} new, {sum(o.predicted for o in good)} graded)."
            )
        for o in good:
            if o.warning:
                st.warning(o.warning)
        if bad:
            st.error(f"{len(bad)} file(s) were not stored:")
            for o in bad:
                st.write(f"- {o.error}")
