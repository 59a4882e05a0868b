from importlib.metadata import entry_points
from pathlib import Path

from typer.testing import CliRunner

from db import repository
from db.engine import make_engine, make_sessionmaker


def test_app_command_is_registered_and_runs_streamlit_headless():
    (ep,) = [e for e in entry_points(group="drgnet.commands") if e.name == "app"]
    assert ep.value == "webapp.cli:app"
    from webapp.cli import MAIN, streamlit_command

    cmd = streamlit_command(8600, "127.0.0.1")
    assert cmd[1:4] == ["-m", "streamlit", "run"] and Path(cmd[4]) == MAIN and MAIN.is_file()
    assert cmd[cmd.index("--server.headless") + 1] == "true" and "8600" in cmd


def test_drgnet_app_help():
    from drgnet.cli import _load_plugins, app

    _load_plugins()
    result = CliRunner().invoke(app, ["app", "--help"])
    assert result.exit_code == 0 and "--seed-demo" in result.output and "--port" in result.output


def test_seeding_is_idempotent(app_env, seeded_template):
    from feedback.demo_seed import seed

    images = sorted((seeded_template.parent / "cohort" / "1. Original Images").glob("*.jpg"))[:3]
    checkpoint = seeded_template.parent / "model"
    created = seed(app_env, checkpoint, images, version_name="tiny-v1", log=lambda _: None)
    assert created == {"admin": None, "clinician": None}  # existing accounts keep their passwords
    factory = make_sessionmaker(make_engine(f"sqlite:///{app_env / 'drgnet.db'}"))
    with factory() as session:
        user = repository.get_user(session, "clinician")
        rows = repository.review_queue(session, user.id)
        assert len(rows) == 3
        assert all(len(repository.predictions_for_image(session, r.image.id)) == 1 for r in rows)
        assert len(repository.list_model_versions(session)) == 1
        assert repository.active_model_version(session).name == "tiny-v1"


def test_seeding_says_how_far_it_is(app_env, seeded_template):
    from feedback.demo_seed import seed

    images = sorted((seeded_template.parent / "cohort" / "1. Original Images").glob("*.jpg"))
    assert len(images) > 3, "the template cohort needs a photograph the template did not seed"
    said: list[str] = []
    seed(app_env, seeded_template.parent / "model", images[:4], version_name="tiny-v1", log=said.append)
    progress = [line for line in said if line.strip().startswith("predicted")]
    assert len(progress) == 1 and progress[0].strip().startswith(f"predicted 4/4 {images[3].name} (")
    assert said[-1] == "4 photographs in the review queue (1 newly predicted)"
