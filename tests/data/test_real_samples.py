"""The lookup of real photographs outside the repository: absent sources give None, present ones are found."""

from __future__ import annotations

from drgnet.data import real_samples


def test_absent_shared_dir_is_none(tmp_path, monkeypatch):
    monkeypatch.setenv("DRGNET_SHARED_DIR", str(tmp_path / "missing"))
    assert real_samples.shared_dir() is None
    assert real_samples.idrid_train4_dir() is None


def test_shared_dir_and_samples_from_environment(tmp_path, monkeypatch):
    (tmp_path / "shared" / "data" / "idrid-train4").mkdir(parents=True)
    original = tmp_path / "samples" / "retinalysis_inference-0.9.0" / "samples" / "fundus" / "original"
    derived = tmp_path / "samples" / "retinalysis_inference-0.9.0" / "samples" / "fundus" / "rgb"
    original.mkdir(parents=True)
    derived.mkdir(parents=True)
    (original / "DRIVE_22.png").write_bytes(b"x")
    (derived / "DRIVE_22.png").write_bytes(b"x")
    (derived / "HRF_04_g.png").write_bytes(b"x")
    monkeypatch.setenv("DRGNET_SHARED_DIR", str(tmp_path / "shared"))
    monkeypatch.setenv("DRGNET_SAMPLES_DIR", str(tmp_path / "samples"))
    assert real_samples.idrid_train4_dir() == tmp_path / "shared" / "data" / "idrid-train4"
    assert real_samples.sample_photographs() == {"DRIVE_22": original / "DRIVE_22.png"}
