"""Upload in the app accepts DICOM: de-identified, the header's eye, date and camera kept, nothing else."""

from __future__ import annotations

import io

import numpy as np
from _support_dicom import IDENTIFYING, make_dicom
from PIL import Image
from test_pages import db, signed_in

from db import repository
from db.models import Image as ImageRow
from drgnet.data.synthetic import generate_fundus
from webapp.views.upload import ACCEPTED


def test_upload_of_a_dicom_file(app_env):
    assert "dcm" in ACCEPTED
    from webapp.services import ingest_and_predict

    user = signed_in(app_env, "admin")  # only admins upload by default (test_upload_permission.py)
    pixels = np.array(Image.open(io.BytesIO(generate_fundus(1, 96, 4).jpeg)))
    data = make_dicom(pixels, laterality="R", acquisition_date="20250110")
    (outcome,) = ingest_and_predict([("Zzyzxwalder.dcm", data)], uploaded_by_id=user.id, eye="left")
    assert outcome.error is None and outcome.created and outcome.predicted
    with db(app_env)() as session:
        image = session.get(ImageRow, outcome.image_id)
        assert image.eye.value == "right"  # the header's eye wins over the form's
        assert str(image.acquisition_date) == "2025-01-10" and image.device_model == "Acme Optics FundusCam 3000"
        assert "Zzyzxwalder" not in image.original_filename
        details = " ".join(str(e.details) for e in repository.audit_entries(session))
    for value in IDENTIFYING:
        assert value not in details
