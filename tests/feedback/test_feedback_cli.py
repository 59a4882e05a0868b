"""``drgnet model ...``, ``drgnet retrain`` and ``drgnet worker`` through the command line's plugin loading."""

from __future__ import annotations

from pathlib import Path

from typer.testing import CliRunner

from db import migrate, repository
from db.engine import make_engine, make_sessionmaker
from drgnet import cli

runner = CliRunner()


def test_register_list_rollback_retrain(sqlite_url: str, data_dir: Path, tiny_checkpoint: Path) -> None:
    migrate.upgrade(sqlite_url)
    cli._load_plugins()
    common = ["--url", sqlite_url]

    def drgnet(*args: str) -> str:
        result = runner.invoke(cli.app, list(args))
        assert result.exit_code == 0, result.output
        return result.output

    assert "no model versions" in drgnet("model", "list", *common)
    for name in ("v1", "v2"):
        drgnet(
            "model",
            "register",
            str(tiny_checkpoint),
            "--name",
            name,
            "--activate",
            "--data-dir",
            str(data_dir),
            *common,
        )
    listing = drgnet("model", "list", *common)
    assert "retired    v1" in listing and "active     v2" in listing
    assert "'v1' is active again" in drgnet("model", "rollback", *common)
    assert "retraining job 1 is queued" in drgnet("retrain", "--set", "steps=2", "--set", "holdout_data=x", *common)
    bad = runner.invoke(cli.app, ["retrain", "--set", "stepz=2", *common])
    assert bad.exit_code == 2 and "stepz" in bad.output
    engine = make_engine(sqlite_url)
    with make_sessionmaker(engine)() as s:
        assert repository.active_model_version(s).name == "v1"
        assert repository.list_jobs(s)[0].params == {"steps": 2, "holdout_data": "x"}
    engine.dispose()
    bench = runner.invoke(cli.app, ["bench", "feedback", "--help"])
    assert bench.exit_code == 0 and "--k" in bench.output
