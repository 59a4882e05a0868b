"""Dashboard: the imported reference compared with the model and the clinicians; the admins' export button."""

from __future__ import annotations

import json

from test_pages import db, page, signed_in, texts

from db import repository
from feedback.label_import import reference_account


def test_dashboard_compares_model_clinicians_and_reference(app_env):
    clinician = signed_in(app_env, "clinician")
    with db(app_env).begin() as session:
        rows = repository.review_queue(session, clinician.id)[:3]
        ref = reference_account(session, "idrid")
        for r in rows:
            repository.add_annotation(
                session, r.image.id, ref, kind="grade-only", grade=r.prediction.grade, imported=True
            )
        repository.add_annotation(session, rows[0].image.id, clinician.id, kind="grade-only", grade=4)
    at = page("dashboard", "dashboard_page", clinician)
    assert not at.exception, at.exception
    assert "Model, clinicians and the reference" in texts(at)
    table = at.dataframe[0].value
    by = {r["Compared with the reference"]: r for r in table.to_dict("records")}
    assert by["model"]["Photographs"] == 3 and by["model"]["Exact agreement"] == "100%"
    assert by["clinician"]["Photographs"] == 1
    # The reference is not an annotator in the clinicians' own tables.
    assert all("reference-idrid" not in str(df.value) for df in at.dataframe[1:])
    assert not [b for b in at.button if b.key == "ex_go"]  # clinicians do not export


def test_admin_exports_from_the_dashboard(app_env):
    admin = signed_in(app_env, "admin")
    clinician = signed_in(app_env, "clinician")
    with db(app_env).begin() as session:
        r = repository.review_queue(session, clinician.id)[0]
        repository.add_annotation(session, r.image.id, clinician.id, kind="grade-only", grade=3)
    at = page("dashboard", "dashboard_page", admin)
    at.selectbox(key="ex_format").select("csv")
    at.button(key="ex_go").click().run()
    assert not at.exception, at.exception
    assert "Exported 1 labels" in texts(at)
    (out,) = (app_env / "exports").iterdir()
    assert json.loads((out / "manifest.json").read_text())["format"] == "csv"
    with db(app_env)() as session:
        (entry,) = repository.audit_entries(session, action="dataset.export")
    assert entry.user_id == admin.id
