"""drgnet screen --ray: the same rows from a pool of model actors on Ray Data as from the local engine."""

from __future__ import annotations

import os

import pytest

ray = pytest.importorskip("ray", reason="the `scale` extra (ray[data]) is not installed")

from drgnet.engines import TorchEngine  # noqa: E402
from drgnet.screening import EngineSpec, ScreenOptions, read_results, screen, screen_ray  # noqa: E402

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def local_ray():
    os.environ["RAY_USAGE_STATS_ENABLED"] = "0"  # no usage reports: nothing may leave this machine
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield
    ray.shutdown()


def test_ray_rows_equal_local_rows_and_resume_works(local_ray, tiny_checkpoint, photos, tmp_path):
    bad = tmp_path / "broken.jpg"
    bad.write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    inputs = [str(photos), str(bad)]
    local = tmp_path / "local.csv"
    screen(inputs, local, TorchEngine.from_checkpoint(tiny_checkpoint), workers=0, progress=False)

    out = tmp_path / "ray.jsonl"
    masks = tmp_path / "masks"
    spec = EngineSpec(kind="torch", checkpoint=str(tiny_checkpoint))
    summary = screen_ray(
        inputs, out, spec, ScreenOptions(masks_dir=str(masks)), concurrency=2, batch_size=3, progress=False
    )
    assert (summary.scored, summary.errors, summary.skipped) == (6, 1, 0)
    a = {r["path"]: r for r in read_results(local)}
    b = {r["path"]: r for r in read_results(out)}
    assert a.keys() == b.keys()
    for path, ra in a.items():
        rb = b[path]
        assert (rb["status"], rb["sha256"], rb["grade"], rb["gradable"], rb["quality_reasons"]) == (
            ra["status"],
            ra["sha256"],
            ra["grade"],
            ra["gradable"],
            ra["quality_reasons"],
        )
        if ra["status"] != "ok":
            assert rb["error"] == ra["error"]
            continue
        for key in (*(f"p_grade_{g}" for g in range(5)), "referable_probability", "uncertainty"):
            assert rb[key] == pytest.approx(ra[key], abs=1e-5)
        assert rb["SE_count"] == ra["SE_count"] and rb["SE_area_fraction"] == pytest.approx(ra["SE_area_fraction"])
        assert os.path.isfile(rb["overlay"])  # the actors wrote the masks

    again = screen_ray(inputs, out, spec, concurrency=1, batch_size=4, progress=False)
    assert (again.scored, again.errors, again.skipped) == (0, 0, 7)
    assert len(read_results(out)) == 7
