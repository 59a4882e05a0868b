"""A screening run at programme scale: 200 photographs plus bad files, every one accounted for."""

from __future__ import annotations

import pytest

from drgnet.data import synthetic
from drgnet.engines import TorchEngine
from drgnet.screening import read_results, screen

pytestmark = pytest.mark.slow


def test_200_photographs_and_bad_files_are_all_scored_or_reported(tiny_checkpoint, tmp_path):
    cohort = tmp_path / "cohort"
    synthetic.generate_cohort(cohort, n=200, size=128, seed=21, workers=2, progress=False)
    photos = cohort / "1. Original Images"
    good = sorted(photos.glob("*.jpg"))
    assert len(good) == 200
    (photos / "zz_truncated.jpg").write_bytes(good[0].read_bytes()[:600])
    (photos / "zz_text.png").write_text("a note, not a photograph")
    (photos / "zz_empty.tif").write_bytes(b"")
    (photos / "zz_random.png").write_bytes(bytes(range(256)) * 8)

    out = tmp_path / "results.csv"
    summary = screen([photos], out, TorchEngine.from_checkpoint(tiny_checkpoint), batch_size=16, workers=2,
                     progress=False)  # fmt: skip
    assert (summary.images, summary.scored, summary.errors) == (204, 200, 4)
    rows = read_results(out)
    assert len(rows) == 204 and len({r["path"] for r in rows}) == 204
    by_status = {}
    for r in rows:
        by_status.setdefault(r["status"], []).append(r)
    assert {r["path"] for r in by_status["ok"]} == {str(p) for p in good}
    assert all(r["grade"] in range(5) and r["sha256"] for r in by_status["ok"])
    assert sorted(r["path"].rsplit("/", 1)[1] for r in by_status["error"]) == [
        "zz_empty.tif", "zz_random.png", "zz_text.png", "zz_truncated.jpg"
    ]  # fmt: skip
    assert all(r["error"] for r in by_status["error"])
