"""Upload permission (issue 16, item 1): one clinician account could upload and grade 50 photographs and so change
the model that serves everyone. Only admins upload by default; an admin's audited setting lets clinicians."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image
from test_pages import db, page, signed_in, texts

from db import repository
from feedback import settings


def _png() -> bytes:
    buf = io.BytesIO()
    Image.fromarray(np.full((96, 96, 3), 90, np.uint8)).save(buf, format="PNG")
    return buf.getvalue()


def test_clinicians_may_not_upload_unless_an_admin_allows_it(app_env):
    from webapp.services import ingest_and_predict

    clinician = signed_in(app_env, "clinician")
    admin = signed_in(app_env, "admin")
    at = page("upload", "upload_page", clinician)
    assert not at.exception and "Only admins upload photographs" in texts(at)
    assert not at.get("file_uploader")  # no form at all
    with pytest.raises(PermissionError, match="Only admins upload"):
        ingest_and_predict([("grey.png", _png())], uploaded_by_id=clinician.id)
    with db(app_env)() as session:
        before = len(repository.review_queue(session, clinician.id, limit=1000))

    with db(app_env).begin() as session, pytest.raises(PermissionError):
        settings.change(session, settings.CLINICIANS_MAY_UPLOAD, True, actor_id=clinician.id)
    with db(app_env).begin() as session:
        settings.change(session, settings.CLINICIANS_MAY_UPLOAD, True, actor_id=admin.id)
    at = page("upload", "upload_page", clinician)
    assert "Only admins upload" not in texts(at)
    out = ingest_and_predict([("grey.png", _png())], uploaded_by_id=clinician.id)
    assert out[0].error and "not a fundus photograph" in out[0].error  # reached ingestion: allowed now
    with db(app_env)() as session:
        assert len(repository.review_queue(session, clinician.id, limit=1000)) == before
        (change,) = repository.audit_entries(session, action="setting.change")
        assert change.user_id == admin.id and change.details["key"] == "clinicians_may_upload"
