"""DICOM in ``drgnet screen`` and ``screen --db``: decoded in every colour space, multi-frame refused with a reason,
and nothing identifying from the header ever reaches the database or the stored files (SQLite and PostgreSQL)."""

from __future__ import annotations

import datetime as dt
import io
from pathlib import Path

import numpy as np
import pytest
from _support_dicom import IDENTIFYING, PATIENT_NAME, make_dicom
from PIL import Image as PILImage
from sqlalchemy import inspect, select, text
from typer.testing import CliRunner

from db import migrate
from db.engine import make_engine, make_sessionmaker
from db.models import Image
from drgnet.cli import app
from drgnet.data.real_samples import samples_dir
from drgnet.data.synthetic import generate_fundus
from drgnet.engines import TorchEngine
from drgnet.screening import read_results, screen
from feedback.retrain import register_checkpoint

runner = CliRunner()


def _fundus(seed: int = 0) -> np.ndarray:
    return np.array(PILImage.open(io.BytesIO(generate_fundus(2, 128, seed).jpeg)))


def test_screen_reads_dicom_in_every_colour_space(tiny_checkpoint, tmp_path):
    folder = tmp_path / "dicom"
    folder.mkdir()
    for i, photometric in enumerate(("RGB", "YBR_FULL", "YBR_FULL_422", "PALETTE COLOR", "MONOCHROME2")):
        (folder / f"eye_{i}.dcm").write_bytes(make_dicom(_fundus(i), photometric=photometric))
    (folder / "stereo.dcm").write_bytes(make_dicom(_fundus(9), frames=2))
    out = tmp_path / "r.csv"
    summary = screen([folder], out, TorchEngine.from_checkpoint(tiny_checkpoint), workers=0, progress=False)
    rows = {Path(r["path"]).name: r for r in read_results(out)}
    assert (summary.scored, summary.errors) == (5, 1)
    assert all(rows[f"eye_{i}.dcm"]["status"] == "ok" for i in range(5))
    assert "multi-frame DICOM (2 frames)" in rows["stereo.dcm"]["error"]


def _dump_database(url: str) -> str:
    """Every row of every table, as text."""
    engine = make_engine(url)
    try:
        with engine.connect() as conn:
            parts = []
            for table in inspect(conn).get_table_names():
                for row in conn.execute(text(f'SELECT * FROM "{table}"')):
                    parts.append(f"{table}: {tuple(row)!r}")
            return "\n".join(parts)
    finally:
        engine.dispose()


def test_no_identifying_value_reaches_the_database_or_the_store(
    db_url, data_dir, tiny_checkpoint, tmp_path, cheap_password_hashing
):
    migrate.upgrade(db_url)
    engine = make_engine(db_url)
    sessions = make_sessionmaker(engine)
    with sessions.begin() as s:
        register_checkpoint(s, tiny_checkpoint, "v1", data_dir=data_dir, activate=True)
    inbox = tmp_path / "pacs"
    inbox.mkdir()
    # A PACS export named after the patient, with name, birth date, ids and a private tag in its header.
    named = inbox / f"{PATIENT_NAME.replace('^', '_')}.dcm"
    named.write_bytes(make_dicom(_fundus(1), laterality="R", acquisition_date="20240305"))
    (inbox / "second.dcm").write_bytes(make_dicom(_fundus(2), photometric="YBR_FULL_422", laterality="L"))
    out = tmp_path / "results.csv"
    result = runner.invoke(
        app,
        ["screen", str(inbox), "--out", str(out), "--db", "--url", db_url, "--data-dir", str(data_dir)]
        + ["--workers", "0", "--no-progress"],
    )
    assert result.exit_code == 0, result.output
    assert "2 predictions stored for review" in result.output

    with sessions() as s:
        images = {i.eye.value: i for i in s.scalars(select(Image))}
    engine.dispose()
    assert set(images) == {"left", "right"}
    right = images["right"]
    assert right.acquisition_date == dt.date(2024, 3, 5)
    assert right.device_model == "Acme Optics FundusCam 3000"
    assert right.original_filename.startswith("dicom-") and right.original_filename.endswith(".png")

    dump = _dump_database(db_url).lower()
    assert "fundus" in dump  # the dump holds the kept camera model: it is a real dump
    for value in (*IDENTIFYING, named.name, named.stem):
        assert value.lower() not in dump, f"{value!r} is stored in the database"
    stored = [p for p in data_dir.rglob("*") if p.is_file()]
    assert len(stored) >= 4  # two photographs and their maps
    if db_url.startswith("sqlite"):  # the database file itself (and its WAL), byte for byte
        stored += [p for p in (tmp_path / "db").rglob("*") if p.is_file()]
    for path in stored:
        blob = path.read_bytes().lower()
        for value in (*IDENTIFYING, named.stem):
            assert value.lower().encode() not in blob, f"{value!r} is in {path}"
            assert value.lower().encode("utf-16-le") not in blob, f"{value!r} is in {path}"


def test_the_real_camera_dicom_screens(tiny_checkpoint, tmp_path):
    path = samples_dir() / "retinalysis_fundusprep-1.1.0" / "samples" / "original" / "issue_3.dcm"
    if not path.is_file():
        pytest.skip(f"{path} absent: run scripts/fetch_real_samples.sh (or set DRGNET_SAMPLES_DIR)")
    out = tmp_path / "real.csv"
    summary = screen([path], out, TorchEngine.from_checkpoint(tiny_checkpoint), workers=0, progress=False)
    (row,) = read_results(out)
    assert summary.scored == 1, row["error"]
    assert row["status"] == "ok" and row["fov_found"] is True


def test_predict_reads_dicom(tiny_checkpoint, tmp_path):
    path = tmp_path / "eye.dcm"
    path.write_bytes(make_dicom(_fundus(3), photometric="YBR_FULL_422"))
    result = runner.invoke(app, ["predict", str(path), "--checkpoint", str(tiny_checkpoint), "--json"])
    assert result.exit_code == 0, result.output
    assert '"grade"' in result.output and str(path) in result.output
    stereo = tmp_path / "stereo.dcm"
    stereo.write_bytes(make_dicom(_fundus(3), frames=2))
    refused = runner.invoke(app, ["predict", str(stereo), "--checkpoint", str(tiny_checkpoint), "--json"])
    assert refused.exit_code == 1 and "multi-frame DICOM (2 frames)" in refused.output
