"""``drgnet model ...``, ``drgnet retrain`` and ``drgnet worker`` through the command line's plugin loading."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from db import migrate, repository
from db.engine import make_engine, make_sessionmaker
from drgnet import cli

runner = CliRunner()


def test_register_list_rollback_retrain(sqlite_url: str, data_dir: Path, trained_checkpoint: Path) -> None:
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
            str(trained_checkpoint),
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
    assert "retraining job 1 is queued" in drgnet("retrain", "--set", "steps=2", "--set", "holdout=x", *common)
    bad = runner.invoke(cli.app, ["retrain", "--set", "stepz=2", *common])
    assert bad.exit_code == 2 and "stepz" in bad.output
    engine = make_engine(sqlite_url)
    with make_sessionmaker(engine)() as s:
        assert repository.active_model_version(s).name == "v1"
        assert repository.list_jobs(s)[0].params == {"steps": 2, "holdout": "x"}
    engine.dispose()
    # The benchmark's settings are FeedbackBenchConfig's, checked before anything trains.
    bench = runner.invoke(cli.app, ["bench", "feedback", "--set", "methods=ours,finetune"])
    assert bench.exit_code == 2 and "unknown method 'finetune'" in bench.output
    bench = runner.invoke(cli.app, ["bench", "screen-db", "--set", "k=3"])
    assert bench.exit_code == 2 and "n_corrected" not in bench.output and "batch_size" in bench.output
    bench = runner.invoke(cli.app, ["bench", "screen-db", "--checkpoint", str(sqlite_url)])
    assert bench.exit_code == 2 and "no checkpoint there" in bench.output and "drgnet demo --retrain" in bench.output
    bench = runner.invoke(cli.app, ["bench", "review", "--set", "n=4", "--set", "opens=3"])
    assert bench.exit_code == 2 and "n (4) must be at least twice opens (3)" in bench.output


def test_retraining_settings_file_is_read_as_every_drgnet_command_reads_one(tmp_path: Path, capsys) -> None:
    import typer

    from feedback.cli import _params

    toml = tmp_path / "retrain.toml"
    toml.write_text('steps = 5\nholdout = "x"\n[loss]\ngce_q = 0.5\n')
    # Only the settings named (a table too: loss.gce_q alone, not a whole LossConfig); --set overrides the file.
    assert _params(["steps=3"], toml) == {"steps": 3, "holdout": "x", "loss.gce_q": 0.5}
    (tmp_path / "retrain.json").write_text('{"loss": {"gce_q": 0.3}}')
    assert _params([], tmp_path / "retrain.json") == {"loss.gce_q": 0.3}
    (tmp_path / "broken.toml").write_text("steps = \n")
    with pytest.raises(typer.Exit):
        _params([], tmp_path / "broken.toml")
    assert "broken.toml: cannot read settings" in capsys.readouterr().err


def test_holdout_register_approve_reject_settings_record_the_os_user(
    db_url: str, data_dir: Path, trained_checkpoint: Path, holdout_cohort: Path, cohort: Path
) -> None:
    from db.models import ModelStatus
    from db.operator import os_user

    migrate.upgrade(db_url)
    cli._load_plugins()
    common = ["--url", db_url]

    def drgnet(*args: str, code: int = 0) -> str:
        result = runner.invoke(cli.app, list(args))
        assert result.exit_code == code, result.output
        return result.output

    out = drgnet("model", "holdout", "register", "h1", str(holdout_cohort), "--data-dir", str(data_dir), *common)
    assert "registered holdout 'h1': 10 photographs" in out
    # Frozen: the name cannot be registered again; a set lacking grades is refused with what is missing.
    again = drgnet("model", "holdout", "register", "h1", str(cohort), "--data-dir", str(data_dir), *common, code=2)
    assert "already" in again
    assert "h1" in drgnet("model", "holdout", "list", *common)
    for name in ("v1", "v2", "v3"):
        drgnet("model", "register", str(trained_checkpoint), "--name", name, "--data-dir", str(data_dir), *common)
    engine = make_engine(db_url)
    Session = make_sessionmaker(engine)  # noqa: N806
    with Session.begin() as s:
        repository.promote_model_version(s, repository.get_model_version_by_name(s, "v1").id)
        for name in ("v2", "v3"):
            repository.set_model_version_status(
                s, repository.get_model_version_by_name(s, name).id, "awaiting-approval"
            )
    assert "awaits an admin's approval" in drgnet("model", "promote", "v2", *common, code=2)
    assert "needs a reason" in drgnet("model", "approve", "v2", "--reason", " ", *common, code=2)
    assert "'v2' is active" in drgnet("model", "approve", "v2", "--reason", "gate ok, images reviewed", *common)
    assert "rejected: 'v3'" in drgnet("model", "reject", "v3", "--reason", "worse on clinic B", *common)
    out = drgnet("model", "settings", "--set", "auto_promote=true", *common)
    assert "auto_promote = true" in out and "clinicians_may_upload = false" in out
    assert "at least 2" in drgnet("model", "settings", "--set", "retrain_min_annotators=1", *common, code=2)
    with Session() as s:
        assert repository.get_model_version_by_name(s, "v3").status is ModelStatus.REJECTED
        for action in ("holdout.register", "model_version.approve", "model_version.reject", "setting.change"):
            (entry,) = repository.audit_entries(s, action=action)
            assert entry.details["operator"].startswith(f"os:{os_user()}@"), action
        assert repository.audit_entries(s, action="model_version.approve")[0].details["reason"] == (
            "gate ok, images reviewed"
        )
    engine.dispose()


def test_screen_db_bench_screens_with_the_base_model_by_default(monkeypatch, tmp_path: Path) -> None:
    from drgnet.base_model import BASE_MODEL_DIR
    from feedback import bench_screening

    used: list[Path] = []
    monkeypatch.setattr(bench_screening, "run", lambda cfg, checkpoint, out, url, log: used.append(checkpoint) or [])
    monkeypatch.setattr(bench_screening, "markdown", lambda cfg, rows, extra: "")
    result = CliRunner().invoke(cli.app, ["bench", "screen-db", "--out", str(tmp_path)])
    assert result.exit_code == 0, result.output
    assert used == [BASE_MODEL_DIR]
