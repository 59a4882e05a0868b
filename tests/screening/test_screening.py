"""drgnet screen on this machine: rows, resume by sha256, bad files, masks, inputs, the CLI."""

from __future__ import annotations

import csv
import hashlib
import json
from pathlib import Path

import cv2
import numpy as np
import pytest
from typer.testing import CliRunner

from drgnet.cli import app
from drgnet.engines import TorchEngine
from drgnet.labels import GRADE_NAMES, LESIONS
from drgnet.screening import (
    COLUMNS,
    ResultWriter,
    ScreenOptions,
    collect_inputs,
    read_results,
    screen,
)

runner = CliRunner()


@pytest.fixture(scope="module")
def engine(tiny_checkpoint):
    return TorchEngine.from_checkpoint(tiny_checkpoint)


def _run(inputs, out, engine, **kwargs):
    kwargs.setdefault("workers", 0)
    return screen([str(i) for i in inputs], out, engine, progress=False, **kwargs)


def test_csv_rows_hold_grade_probabilities_lesions_quality_and_hash(photos, engine, tmp_path):
    out = tmp_path / "results.csv"
    summary = _run([photos], out, engine, batch_size=4, workers=2)
    assert (summary.images, summary.scored, summary.errors, summary.skipped) == (6, 6, 0, 0)
    with open(out, newline="") as fh:
        assert next(csv.reader(fh)) == list(COLUMNS)
    rows = read_results(out)
    assert sorted(r["path"] for r in rows) == sorted(str(p) for p in photos.rglob("*.jpg"))
    for r in rows:
        assert r["status"] == "ok" and r["error"] is None
        assert r["sha256"] == hashlib.sha256(Path(r["path"]).read_bytes()).hexdigest()
        probs = [r[f"p_grade_{g}"] for g in range(5)]
        assert sum(probs) == pytest.approx(1.0, abs=1e-5)
        assert r["grade"] == int(np.argmax(probs)) and r["grade_name"] == GRADE_NAMES[r["grade"]]
        assert r["referable"] == (r["grade"] >= 2)
        assert r["referable_probability"] == pytest.approx(sum(probs[2:]), abs=2e-6)
        assert 0.0 <= r["uncertainty"] <= 1.0
        # The fixture's model marks all of the retina as soft exudate and nothing else.
        assert r["SE_area_fraction"] > 0.9 and r["SE_count"] == 1
        assert r["MA_area_fraction"] == 0.0 and r["MA_count"] == 0
        # 128 px photographs are too small to grade, and the row says so.
        assert r["gradable"] is False and r["quality_reasons"] == "low_resolution" and r["fov_found"] is True
        # Within the quality check's exposure bounds (30-170): the calibrated generator varies exposure shot to shot
        # as real cameras do, so a synthetic photograph may be darker than the old fixed 60.
        assert 30 < r["brightness"] < 170 and r["sharpness"] > 8
        assert r["engine"] == "torch" and r["model_version"] == engine.model_version
        assert r["overlay"] is None


def test_jsonl_rows_equal_csv_rows(photos, engine, tmp_path):
    _run([photos], tmp_path / "r.csv", engine, batch_size=3)
    _run([photos], tmp_path / "r.jsonl", engine, batch_size=3)
    lines = (tmp_path / "r.jsonl").read_text().splitlines()
    assert all(list(json.loads(line)) == list(COLUMNS) for line in lines)
    assert read_results(tmp_path / "r.jsonl") == read_results(tmp_path / "r.csv")


@pytest.mark.parametrize("suffix", [".csv", ".jsonl"])
def test_resume_skips_photographs_already_in_the_output_by_sha256(photos, engine, tmp_path, suffix):
    out = tmp_path / f"results{suffix}"
    listed = tmp_path / "first.csv"
    first = sorted(photos.rglob("*.jpg"))[:3]
    listed.write_text("path,patient\n" + "".join(f"{p},x\n" for p in first))
    assert _run([listed], out, engine).scored == 3

    # A renamed copy of a screened photograph has the same sha256: skipped too.
    copy = tmp_path / "copy_of_eye_0.jpg"
    copy.write_bytes(first[0].read_bytes())
    summary = _run([photos, copy], out, engine)
    assert (summary.scored, summary.skipped) == (3, 4)
    rows = read_results(out)
    assert len(rows) == 6 and len({r["sha256"] for r in rows}) == 6

    # Killed while writing the last row: the cut-off line is dropped and that photograph screened again.
    data = out.read_bytes()
    out.write_bytes(data[:-25])
    summary = _run([photos], out, engine)
    assert summary.dropped_partial_line and (summary.scored, summary.skipped) == (1, 5)
    rows = read_results(out)
    assert len(rows) == 6 and sorted(r["path"] for r in rows) == sorted(str(p) for p in photos.rglob("*.jpg"))
    assert out.read_bytes().endswith(b"\n")


def test_writer_refuses_a_file_with_other_columns(tmp_path):
    out = tmp_path / "other.csv"
    out.write_text("a,b\n1,2\n")
    with pytest.raises(ValueError, match="not this version's screening columns"):
        ResultWriter(out)
    with pytest.raises(ValueError, match=r"\.csv or \.jsonl"):
        ResultWriter(tmp_path / "results.txt")


def test_bad_files_become_error_rows_and_the_run_goes_on(photos, engine, tmp_path):
    bad = tmp_path / "bad"
    bad.mkdir()
    good = sorted(photos.rglob("*.jpg"))[0]
    (bad / "truncated.jpg").write_bytes(good.read_bytes()[:400])
    (bad / "notes.png").write_text("not a photograph")
    (bad / "empty.jpg").write_bytes(b"")
    cv2.imwrite(str(bad / "grey.png"), np.full((96, 128, 3), 128, np.uint8))
    listed = tmp_path / "list.csv"
    listed.write_text(f"{good}\n{bad / 'missing.jpg'}\n")  # no header: the first column is the path

    summary = _run([bad, listed], tmp_path / "r.jsonl", engine, batch_size=2)
    assert (summary.scored, summary.errors) == (1, 5)
    rows = {r["path"].split("/")[-1]: r for r in read_results(tmp_path / "r.jsonl")}
    assert rows[good.name]["status"] == "ok"
    for name in ("truncated.jpg", "notes.png", "empty.jpg", "grey.png", "missing.jpg"):
        r = rows[name]
        assert r["status"] == "error" and name in r["error"] and r["grade"] is None and r["gradable"] is False
    assert "not an image" in rows["notes.png"]["error"] and "BytesIO" not in rows["notes.png"]["error"]
    assert "not an image" in rows["truncated.jpg"]["error"]
    assert "not a fundus photograph" in rows["grey.png"]["error"]
    assert rows["grey.png"]["quality_reasons"] == "no_field_of_view"
    assert "no such file" in rows["missing.jpg"]["error"] and rows["missing.jpg"]["sha256"] is None
    assert rows["grey.png"]["sha256"] == hashlib.sha256((bad / "grey.png").read_bytes()).hexdigest()


def test_masks_are_written_at_the_photographs_resolution(photos, engine, tmp_path):
    masks = tmp_path / "masks"
    _run([sorted(photos.rglob("*.jpg"))[0]], tmp_path / "r.csv", engine, options=ScreenOptions(masks_dir=str(masks)))
    (row,) = read_results(tmp_path / "r.csv")
    stem = f"eye_0_{row['sha256'][:12]}"
    assert row["overlay"] == str(masks / f"{stem}_overlay.png")
    overlay = cv2.imread(row["overlay"])
    assert overlay.shape == (128, 128, 3)
    for lesion in LESIONS:
        mask = cv2.imread(str(masks / f"{stem}_{lesion}.png"), cv2.IMREAD_UNCHANGED)
        assert mask.shape == (128, 128) and set(np.unique(mask)) <= {0, 255}
        if lesion == "SE":
            assert 0.5 < (mask > 0).mean() < 0.9 and mask[0, 0] == 0  # the retina, not the black border
        else:
            assert not mask.any()


def test_inputs_are_folders_globs_files_and_csv_lists(photos, tmp_path):
    everything = [str(p) for p in sorted(photos.rglob("*.jpg"))]
    (photos / "a" / "readme.txt").write_text("ignored by the folder search")
    try:
        assert collect_inputs([photos]) == everything
        assert collect_inputs([f"{photos}/**/*.jpg"]) == everything
        assert collect_inputs([f"{photos}/a/*.jpg", everything[0]]) == everything[:3]  # duplicates dropped
    finally:
        (photos / "a" / "readme.txt").unlink()
    # A CSV list: column `path` wherever it is; relative paths are relative to the CSV's folder.
    listed = tmp_path / "lists" / "list.csv"
    listed.parent.mkdir()
    relative = [Path("..") / ".." / Path(p).relative_to(tmp_path.parent) for p in everything[:2]]
    listed.write_text("patient,path\n" + "".join(f"p{i},{r}\n" for i, r in enumerate(relative)))
    assert [Path(p).resolve() for p in collect_inputs([listed])] == [Path(p).resolve() for p in everything[:2]]
    absolute = tmp_path / "absolute.csv"
    absolute.write_text("".join(f"{p},extra\n" for p in everything[2:4]))  # no header: first column
    assert collect_inputs([absolute]) == everything[2:4]
    with pytest.raises(ValueError, match="no such file or folder"):
        collect_inputs([tmp_path / "nowhere"])
    with pytest.raises(ValueError, match="matches no file"):
        collect_inputs([f"{tmp_path}/*.png"])


def test_cli_screen_and_its_errors(photos, tiny_checkpoint, tmp_path, monkeypatch):
    import drgnet.base_model

    out = tmp_path / "cli.jsonl"
    args = ["screen", str(photos), "--checkpoint", str(tiny_checkpoint), "--out", str(out), "--no-progress"]
    result = runner.invoke(app, [*args, "--batch-size", "4", "--workers", "1"])
    assert result.exit_code == 0, result.output
    assert "6 photographs: 6 scored" in result.output
    assert len(read_results(out)) == 6
    again = runner.invoke(app, args)
    assert again.exit_code == 0 and "6 already in" in again.output
    # Without --checkpoint the shipped base model screens; where it is missing the error names its folder.
    monkeypatch.setattr(drgnet.base_model, "BASE_MODEL_DIR", tmp_path / "no-base-model")
    missing = runner.invoke(app, ["screen", str(photos), "--out", str(out)])
    assert missing.exit_code == 2 and "no-base-model lacks checkpoint.json" in missing.output
    no_onnx = runner.invoke(app, ["screen", str(photos), "--out", str(out), "--engine", "onnx"])
    assert no_onnx.exit_code == 2 and "--onnx" in no_onnx.output
    bad_input = runner.invoke(
        app, ["screen", str(tmp_path / "nope"), "--checkpoint", str(tiny_checkpoint), "--out", str(out)]
    )
    assert bad_input.exit_code == 2 and "no such file or folder" in bad_input.output
