"""Model versions (admins only): candidates awaiting approval with their gate report next to the active version's,
approval or rejection with a reason, metrics and status, retraining with live progress, activation and rollback,
the registered hold-outs and the run-time settings."""

from __future__ import annotations

import json
from typing import Any

import pandas as pd
import streamlit as st

from db import repository
from db.models import JobStatus, ModelStatus
from drgnet.labels import GRADE_NAMES, LESIONS
from feedback import settings
from webapp import auth
from webapp.services import queue_retraining, sessions

JOB_POLL_S = 2.0

#: Rows of the side-by-side gate report: (label, metric key in a hold-out's metrics).
REPORT_ROWS = (
    ("QWK", "qwk"),
    ("Accuracy", "accuracy"),
    ("Referable sensitivity", "referable_sensitivity"),
    ("Referable specificity", "referable_specificity"),
    ("Referable AUC", "referable_auc"),
    ("Mean lesion AUPR", "lesion_aupr_mean"),
)


def gate_report(metrics: dict[str, Any]) -> pd.DataFrame:
    """The gate's figures on the registered hold-out: the active version's (when the candidate was evaluated),
    the candidate's and the change, one row per figure, per-lesion AUPR included."""
    before = ((metrics or {}).get("parent_holdout") or {}).get("holdout") or {}
    after = ((metrics or {}).get("holdout") or {}).get("holdout") or {}
    rows = [(label, before.get(key), after.get(key)) for label, key in REPORT_ROWS]
    for lesion in LESIONS:
        b = (before.get("lesion_aupr") or {}).get(lesion)
        a = (after.get("lesion_aupr") or {}).get(lesion)
        rows.append((f"{lesion} AUPR", b, a))
    return pd.DataFrame(
        [
            {
                "Figure": label,
                "Active version": "n/a" if b is None else f"{b:.3f}",
                "Candidate": "n/a" if a is None else f"{a:.3f}",
                "Change": "n/a" if a is None or b is None else f"{a - b:+.3f}",
            }
            for label, b, a in rows
        ]
    )


def confusion_change(metrics: dict[str, Any]) -> pd.DataFrame | None:
    """Candidate minus active version: how many hold-out photographs of each true grade (rows) moved into each
    predicted grade (columns); None when either matrix is missing."""
    before = (((metrics or {}).get("parent_holdout") or {}).get("holdout") or {}).get("confusion")
    after = (((metrics or {}).get("holdout") or {}).get("holdout") or {}).get("confusion")
    if not before or not after:
        return None
    labels = [f"{g} {GRADE_NAMES[g]}" for g in GRADE_NAMES]
    diff = [[int(a) - int(b) for a, b in zip(ra, rb, strict=True)] for ra, rb in zip(after, before, strict=True)]
    return pd.DataFrame(diff, index=labels, columns=labels)


def _awaiting(admin: auth.SignedIn, factory: Any, active_name: str | None) -> None:
    with factory() as session:
        waiting = repository.versions_awaiting_approval(session)
        rows = [(v.id, v.name, v.parent.name if v.parent else None, dict(v.metrics or {})) for v in waiting]
    st.subheader("Awaiting approval")
    if not rows:
        st.caption("No candidate waits for approval.")
        return
    for version_id, name, parent, metrics in rows:
        with st.container(border=True):
            st.markdown(f"**{name}**, fine-tuned from **{parent or '?'}**")
            if parent != active_name:
                st.warning(
                    f"The active version is now {active_name or 'none'}, not {parent}: these figures compare "
                    "the candidate with the version it was trained from."
                )
            held = metrics.get("holdout_set") or {}
            st.caption(
                f"Hold-out **{held.get('name', '?')}**: {held.get('n_images', '?')} photographs, grades "
                f"{held.get('grade_counts', {})}, digest {str(held.get('digest', ''))[:12]}..."
            )
            st.dataframe(gate_report(metrics), hide_index=True, width="stretch")
            change = confusion_change(metrics)
            if change is not None:
                st.caption(
                    "Confusion change on the hold-out (candidate minus active): rows true grade, columns "
                    "predicted grade; positive numbers moved into that prediction."
                )
                st.dataframe(change, width="stretch")
            for reason in (metrics.get("gate") or {}).get("reasons", []):
                st.write(f"- {reason}")
            reason = st.text_input("Reason (kept in the audit log)", key=f"md_reason_{version_id}")
            c1, c2 = st.columns(2)
            approve = c1.button("Approve and activate", key=f"md_approve_{version_id}", type="primary")
            reject = c2.button("Reject", key=f"md_reject_{version_id}")
            if approve or reject:
                decide = repository.approve_model_version if approve else repository.reject_model_version
                try:
                    with factory.begin() as session:
                        decide(session, version_id, actor_id=admin.id, reason=reason)
                except (PermissionError, ValueError) as exc:
                    st.error(str(exc))
                else:
                    st.success(f"{name}: {'approved, now active' if approve else 'rejected'}.")
                    st.rerun()


def _settings(admin: auth.SignedIn, factory: Any) -> None:
    st.subheader("Settings")
    with factory() as session:
        values = {s.key: settings.get(session, s) for s in settings.SETTINGS.values()}
    auto = st.toggle(settings.AUTO_PROMOTE.help, value=values["auto_promote"], key="md_auto_promote")
    upload = st.toggle(
        settings.CLINICIANS_MAY_UPLOAD.help, value=values["clinicians_may_upload"], key="md_clinicians_upload"
    )
    annotators = st.number_input(
        settings.RETRAIN_MIN_ANNOTATORS.help,
        min_value=2,
        value=int(values["retrain_min_annotators"]),
        step=1,
        key="md_min_annotators",
    )
    if st.button("Save settings", key="md_save_settings"):
        wanted = {"auto_promote": auto, "clinicians_may_upload": upload, "retrain_min_annotators": int(annotators)}
        try:
            with factory.begin() as session:
                for key, value in wanted.items():
                    if value != values[key]:
                        settings.change(session, settings.SETTINGS[key], value, actor_id=admin.id)
        except (PermissionError, ValueError) as exc:
            st.error(str(exc))
        else:
            st.success("Settings saved.")


def _holdouts(factory: Any) -> None:
    st.subheader("Hold-outs")
    with factory() as session:
        rows = [
            {
                "Name": h.name,
                "Purpose": h.purpose.value,
                "Photographs": h.n_images,
                "Grades": json.dumps(h.grade_counts),
                "Registered": h.created_at.strftime("%Y-%m-%d %H:%M"),
            }
            for h in repository.list_holdouts(session)
        ]
    if not rows:
        st.warning(
            "No frozen hold-out is registered: retraining refuses to run. Register one with "
            "`drgnet model holdout register NAME FOLDER` (every grade, healthy photographs from your cameras)."
        )
        return
    st.dataframe(rows, hide_index=True, width="stretch")


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
    _awaiting(admin, factory, active.name if active is not None else None)

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
    _holdouts(factory)
    _settings(admin, factory)
