"""drgnet screen --ray: the same rows from a pool of model actors on Ray Data as from the local engine."""

from __future__ import annotations

import os

import numpy as np
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


def test_ray_with_db_stores_what_the_actors_scored(local_ray, tiny_checkpoint, photos, tmp_path, sqlite_url):
    """The actors may run where the database is not: they send their maps back and the driver stores them."""
    from sqlalchemy import func, select

    from db import migrate
    from db.engine import make_engine, make_sessionmaker
    from db.models import Image, Prediction
    from feedback.predictions import load_maps
    from feedback.screening_sink import DatabaseSink

    migrate.upgrade(sqlite_url)
    data_dir = tmp_path / "data"
    local_sink = DatabaseSink(sqlite_url, data_dir, source="local", checkpoint=tiny_checkpoint)
    local = screen(
        [str(photos)],
        tmp_path / "local.csv",
        TorchEngine.from_checkpoint(tiny_checkpoint),
        workers=0,
        progress=False,
        sink=local_sink,
    )
    local_sink.close()
    assert local.scored == 6 and local_sink.stored == 6

    # A second database: the Ray run must store the same predictions by itself.
    ray_url = sqlite_url.replace("drgnet.db", "ray.db")
    migrate.upgrade(ray_url)
    ray_sink = DatabaseSink(ray_url, data_dir, source="ray", checkpoint=tiny_checkpoint)
    spec = EngineSpec(kind="torch", checkpoint=str(tiny_checkpoint))
    summary = screen_ray(
        [str(photos)], tmp_path / "ray.csv", spec, concurrency=2, batch_size=4, progress=False, sink=ray_sink
    )
    ray_sink.close()
    assert summary.scored == 6 and ray_sink.stored == 6

    def stored(url):
        engine = make_engine(url)
        with make_sessionmaker(engine)() as s:
            assert s.scalar(select(func.count()).select_from(Prediction)) == 6
            out = {}
            for p in s.scalars(select(Prediction)):
                lesion, attention = load_maps(p, data_dir)
                out[s.get(Image, p.image_id).sha256] = (p.probabilities, lesion, attention)
        engine.dispose()
        return out

    a, b = stored(sqlite_url), stored(ray_url)
    assert a.keys() == b.keys()
    for sha, (probs, lesion, attention) in a.items():
        assert b[sha][0] == pytest.approx(probs, abs=1e-5)
        # The actors send float16 maps: equal to the local ones but where float16 rounding crosses one of the
        # stored 1/255 steps.
        assert np.abs(b[sha][1] - lesion).max() <= 1 / 255 + 1e-6
        assert np.abs(b[sha][2] - attention).max() <= 1 / 255 + 1e-6
