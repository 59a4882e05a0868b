"""The Models page (issue 16, item 1): a candidate that passed the gate waits; an admin sees its gate figures next
to the active version's (per-grade confusion change, per-lesion AUPR, referable sensitivity and specificity, the
hold-out and its size) and approves or rejects it with a reason, audited."""

from __future__ import annotations

import pytest
from test_pages import db, page, signed_in, texts

from db import repository
from db.models import ModelStatus


def _holdout(spec: float, confusion: list[list[int]]) -> dict:
    return {
        "qwk": 0.71,
        "accuracy": 0.6,
        "referable_auc": 0.8,
        "referable_sensitivity": 0.9,
        "referable_specificity": spec,
        "lesion_aupr_mean": 0.4,
        "lesion_aupr": {"MA": 0.1, "HE": 0.5, "EX": 0.6, "SE": 0.4},
        "n_images": 60,
        "confusion": confusion,
    }


EYE = [[10, 2, 0, 0, 0], [1, 8, 1, 0, 0], [0, 1, 9, 0, 0], [0, 0, 1, 9, 0], [0, 0, 0, 1, 9]]
WORSE = [[7, 2, 3, 0, 0], [1, 8, 1, 0, 0], [0, 1, 9, 0, 0], [0, 0, 1, 9, 0], [0, 0, 0, 1, 9]]


def _waiting(data, name: str) -> int:
    with db(data).begin() as s:
        parent = repository.active_model_version(s)
        v = repository.add_model_version(
            s,
            name,
            "models/x",
            "a" * 64,
            parent_id=parent.id,
            metrics={
                "parent_holdout": {"holdout": _holdout(0.917, EYE)},
                "holdout": {"holdout": _holdout(0.900, WORSE)},
                "holdout_set": {"name": "clinic-holdout-2026", "n_images": 60, "grade_counts": {"0": 12}},
                "gate": {"passed": True, "reasons": ["holdout: referable specificity 0.917 -> 0.900"]},
            },
        )
        repository.set_model_version_status(s, v.id, ModelStatus.AWAITING_APPROVAL)
        return v.id


def test_admin_sees_the_gate_report_and_decides_with_a_reason(app_env):
    admin = signed_in(app_env, "admin")
    first, second = _waiting(app_env, "cand-a"), _waiting(app_env, "cand-b")
    at = page("models", "models_page", admin)
    assert not at.exception, at.exception
    body = texts(at)
    assert "Awaiting approval" in body and "clinic-holdout-2026" in body and "60 photographs" in body
    frames = [e.value for e in at.dataframe]
    report = next(f for f in frames if "Figure" in getattr(f, "columns", []))
    spec = report.set_index("Figure").loc["Referable specificity"]
    assert (spec["Active version"], spec["Candidate"], spec["Change"]) == ("0.917", "0.900", "-0.017")
    assert {"MA AUPR", "HE AUPR", "EX AUPR", "SE AUPR", "Referable sensitivity"} <= set(report["Figure"])
    change = next(f for f in frames if "0 No DR" in list(getattr(f, "index", [])))
    assert change.loc["0 No DR", "2 Moderate NPDR"] == 3 and change.loc["0 No DR", "0 No DR"] == -3

    at.button(key=f"md_approve_{first}").click().run()
    assert "needs a reason" in texts(at)
    at.text_input(key=f"md_reason_{first}").input("specificity within margin; reviewed 10 cases")
    at.button(key=f"md_approve_{first}").click().run()
    at.text_input(key=f"md_reason_{second}").input("superseded by cand-a")
    at.button(key=f"md_reject_{second}").click().run()
    assert not at.exception, at.exception
    with db(app_env)() as s:
        assert repository.active_model_version(s).id == first
        assert repository.get_model_version(s, second).status is ModelStatus.REJECTED
        (approval,) = repository.audit_entries(s, action="model_version.approve")
        assert approval.user_id == admin.id and approval.details["reason"].startswith("specificity within")
        (rejection,) = repository.audit_entries(s, action="model_version.reject")
        assert rejection.user_id == admin.id and rejection.details["reason"] == "superseded by cand-a"


def test_a_clinician_cannot_approve(app_env):
    clinician = signed_in(app_env, "clinician")
    version = _waiting(app_env, "cand")

    with db(app_env).begin() as s, pytest.raises(PermissionError, match="only an active admin"):
        repository.approve_model_version(s, version, actor_id=clinician.id, reason="looks fine to me")
    with db(app_env).begin() as s, pytest.raises(PermissionError):
        repository.reject_model_version(s, version, actor_id=clinician.id, reason="no")


def test_dashboard_compares_shadow_models_with_the_experts():
    from webapp.views.dashboard import models_against_experts

    rows = [("v1", False, 0, 0), ("v1", False, 3, 3), ("cand", True, 0, 4), ("cand", True, 3, 3)]
    table = models_against_experts(rows).set_index("Model")
    assert table.loc["cand", "Predictions"].startswith("shadow") and table.loc["v1", "Predictions"] == "served"
    assert table.loc["cand", "Referable specificity"] == 0.0 and table.loc["v1", "Referable specificity"] == 1.0
    assert table.loc["cand", "Referable sensitivity"] == 1.0


def test_nobody_but_a_person_decides(app_env):
    from db.operator import operator_scope

    version = _waiting(app_env, "cand")
    with db(app_env).begin() as s, pytest.raises(PermissionError, match="say who decides"):
        repository.approve_model_version(s, version, actor_id=None, reason="automatic")
    with (
        operator_scope("worker:host:1"),
        db(app_env).begin() as s,
        pytest.raises(PermissionError, match="person at the command line"),
    ):
        repository.approve_model_version(s, version, actor_id=None, reason="automatic")
    with db(app_env)() as s:
        assert repository.get_model_version(s, version).status is ModelStatus.AWAITING_APPROVAL
