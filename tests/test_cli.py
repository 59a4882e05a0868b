import csv

from typer.testing import CliRunner

from drgnet.cli import app

runner = CliRunner()


def test_synth_writes_images_masks_and_grades(tmp_path):
    out = tmp_path / "cohort"
    result = runner.invoke(
        app, ["synth", "--n", "4", "--size", "128", "--seed", "1", "--workers", "1", "--out", str(out)]
    )
    assert result.exit_code == 0, result.output
    images = sorted((out / "1. Original Images").glob("*.jpg"))
    assert len(images) == 4
    masks = sorted((out / "2. All Segmentation Groundtruths").rglob("*.png"))
    assert len(masks) == 16
    with open(out / "grades.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert [r["Image name"] for r in rows] == [p.stem for p in images]
    assert all(r["Retinopathy grade"] in {"0", "1", "2", "3", "4"} for r in rows)


def test_synth_preview_writes_contact_sheet(tmp_path):
    result = runner.invoke(app, ["synth", "--n", "0", "--size", "128", "--out", str(tmp_path), "--preview"])
    assert result.exit_code == 0, result.output
    assert (tmp_path / "preview.png").stat().st_size > 10_000


def test_synth_unknown_style_is_a_clear_error(tmp_path):
    result = runner.invoke(app, ["synth", "--style", "polaroid", "--out", str(tmp_path)])
    assert result.exit_code == 2
    assert "unknown camera style 'polaroid'" in result.output
    assert "default" in result.output
