"""Model versions (admins only): metrics and status, retraining with live progress, activation and rollback."""

from __future__ import annotations

import json

import streamlit as st

from db import repository
from db.models import JobStatus, ModelStatus
from webapp import auth
from webapp.services import queue_retraining, sessions

JOB_POLL_S = 2.0


def _metric_text(metrics: dict) -> str:
    flat = {k: v for k, v in (metrics or {}).items() if isinstance(v, int | float)}
    return ", ".join(f"{k} {v:.3f}" if isinstance(v, float) else f"{k} {v}" for k, v in list(flat.items())[:6]) or (
        json.dumps(metrics)[:80] if metrics else ""
    )


@st.fragment(run_every=JOB_POLL_S)
def _jobs() -> None:
    with sessions()() as session:
        jobs = repository.list_jobs(session, kind="retrain", limit=5)
    if not jobs:
        st.caption("No retraining job yet.")
        return
    for job in jobs:
        label = f"Job #{job.id}: {job.status.value}" + (f" · {job.message}" if job.message else "")
        if job.status in (JobStatus.QUEUED, JobStatus.RUNNING):
            st.progress(float(job.progress), text=label)
        elif job.status is JobStatus.FAILED:
            st.error(f"{label} · {job.error or ''}")
        else:
            st.success(label + (f" · {json.dumps(job.result)[:160]}" if job.result else ""))


def models_page() -> None:
    admin = auth.require_admin()
    st.title("Models")
    factory = sessions()
    with factory() as session:
        versions = repository.list_model_versions(session)
        active = repository.active_model_version(session)
        table = {
            "Version": [v.name for v in versions],
            "Status": [v.status.value for v in versions],
            "Metrics": [_metric_text(v.metrics) for v in versions],
            "Parent": [v.parent.name if v.parent else "" for v in versions],
            "Created": [v.created_at.strftime("%Y-%m-%d %H:%M") for v in versions],
        }
    if active is None:
        st.warning("No model version is active: uploads are stored but not graded.")
    else:
        st.write(f"Active version: **{active.name}** (since {active.promoted_at:%Y-%m-%d %H:%M} UTC)")
    st.dataframe(table, hide_index=True, width="stretch")

    st.subheader("Retraining")
    if st.button("Queue a retraining job", key="md_retrain", type="primary"):
        try:
            with factory.begin() as session:
                job_id = queue_retraining(session, admin.id)
        except (PermissionError, ValueError) as exc:
            st.error(str(exc))
        else:
            st.success(f"Retraining job #{job_id} queued; a worker (`drgnet worker`) picks it up.")
    _jobs()

    st.subheader("Activate or roll back")
    choices = [v for v in versions if v.status in (ModelStatus.CANDIDATE, ModelStatus.RETIRED)]
    if choices:
        pick = st.selectbox("Version to activate", [v.name for v in choices], key="md_pick")
        if st.button("Activate", key="md_activate"):
            version = next(v for v in choices if v.name == pick)
            try:
                with factory.begin() as session:
                    repository.promote_model_version(session, version.id, actor_id=admin.id, reason="activated in app")
            except ValueError as exc:
                st.error(str(exc))
            else:
                st.rerun()
    reason = st.text_input("Reason for a rollback", key="md_reason")
    if st.button("Roll back to the previous version", key="md_rollback", disabled=active is None):
        try:
            with factory.begin() as session:
                now = repository.rollback_model_version(session, actor_id=admin.id, reason=reason or None)
                name = now.name
        except ValueError as exc:
            st.error(str(exc))
        else:
            st.success(f"Rolled back: {name} is active again.")
            st.rerun()
