"""``drgnet db ...`` and ``drgnet user ...``."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from db import migrate
from db.cli import db_app, user_app
from db.engine import make_engine, make_sessionmaker
from db.repository import audit_entries

runner = CliRunner()


def test_upgrade_creates_the_sqlite_file_and_its_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    target = tmp_path / "new" / "deeper" / "drgnet.db"
    monkeypatch.setenv("DRGNET_DATABASE_URL", f"sqlite:///{target}")
    result = runner.invoke(db_app, ["current"])
    assert result.exit_code == 0 and "revision none" in result.output and not target.exists()
    result = runner.invoke(db_app, ["upgrade"])
    assert result.exit_code == 0, result.output
    assert target.is_file() and f"at revision {migrate.head_revision()}" in result.output


def test_upgrade_current_downgrade(db_url: str):
    result = runner.invoke(db_app, ["upgrade", "--url", db_url])
    assert result.exit_code == 0, result.output
    result = runner.invoke(db_app, ["current", "--url", db_url])
    assert f"revision {migrate.head_revision()}" in result.output and "up to date" in result.output
    result = runner.invoke(db_app, ["downgrade", "base", "--url", db_url])
    assert result.exit_code == 0, result.output
    assert "base (empty)" in result.output
    assert migrate.current_revision(db_url) is None
    result = runner.invoke(db_app, ["downgrade", "nonsense", "--url", db_url])
    assert result.exit_code == 2 and "cannot migrate" in result.output


def test_users_from_the_command_line(db_url: str):
    assert runner.invoke(db_app, ["upgrade", "--url", db_url]).exit_code == 0
    secret = "correct horse battery"
    result = runner.invoke(
        user_app, ["add", "ana", "--role", "admin", "--password-stdin", "--url", db_url], input=secret + "\n"
    )
    assert result.exit_code == 0, result.output
    assert "created admin 'ana'" in result.output and secret not in result.output
    # Prompted twice when not read from stdin.
    result = runner.invoke(
        user_app, ["add", "ben", "--role", "clinician", "--url", db_url], input="ben-password\nben-password\n"
    )
    assert result.exit_code == 0, result.output

    ok = runner.invoke(user_app, ["verify", "ana", "--password-stdin", "--url", db_url], input=secret + "\n")
    assert ok.exit_code == 0 and "password ok" in ok.output
    bad = runner.invoke(user_app, ["verify", "ana", "--url", db_url], input="wrong guess\n")
    assert bad.exit_code == 1 and "wrong guess" not in bad.output

    assert runner.invoke(user_app, ["disable", "ana", "--url", db_url]).exit_code == 0
    again = runner.invoke(user_app, ["verify", "ana", "--password-stdin", "--url", db_url], input=secret + "\n")
    assert again.exit_code == 1

    listing = runner.invoke(user_app, ["list", "--url", db_url])
    lines = listing.output.splitlines()
    assert lines[0].split()[:3] == ["ana", "admin", "disabled"] and lines[1].split()[:3] == [
        "ben",
        "clinician",
        "active",
    ]

    dup = runner.invoke(
        user_app, ["add", "ben", "--role", "clinician", "--password-stdin", "--url", db_url], input="x" * 10
    )
    assert dup.exit_code == 2 and "already exists" in dup.output
    assert runner.invoke(user_app, ["disable", "zed", "--url", db_url]).exit_code == 2
    nurse = runner.invoke(
        user_app, ["add", "cy", "--role", "nurse", "--password-stdin", "--url", db_url], input="x" * 10
    )
    assert nurse.exit_code == 2 and "unknown role 'nurse'" in nurse.output
    short = runner.invoke(
        user_app, ["add", "cy", "--role", "clinician", "--password-stdin", "--url", db_url], input="abc\n"
    )
    assert short.exit_code == 2 and "too short" in short.output

    # Failed sign-ins are audited even though the command exits 1.
    engine = make_engine(db_url)
    with make_sessionmaker(engine)() as session:
        reasons = [e.details["reason"] for e in audit_entries(session, action="user.login_failed")]
        assert reasons == ["wrong password", "account disabled"]
        assert all(secret not in str(e.details) for e in audit_entries(session))
    engine.dispose()


def test_user_commands_on_an_unmigrated_database_say_what_to_do(tmp_path: Path):
    url = f"sqlite:///{tmp_path / 'empty.db'}"
    result = runner.invoke(user_app, ["list", "--url", url])
    assert result.exit_code == 2 and "run `drgnet db upgrade`" in result.output


def test_gc_command(tmp_path: Path):
    url = f"sqlite:///{tmp_path / 'drgnet.db'}"
    assert runner.invoke(db_app, ["upgrade", "--url", url]).exit_code == 0
    from db.artifacts import artifact_store

    orphan = artifact_store(tmp_path).put_bytes(b"nobody refers to me", "png")
    result = runner.invoke(db_app, ["gc", "--url", url, "--data-dir", str(tmp_path), "--min-age", "0", "--dry-run"])
    assert result.exit_code == 0 and "artifacts: would remove 1 unreferenced" in result.output
    assert artifact_store(tmp_path).exists(orphan)
    result = runner.invoke(db_app, ["gc", "--url", url, "--data-dir", str(tmp_path), "--min-age", "0"])
    assert "artifacts: removed 1 unreferenced" in result.output and not artifact_store(tmp_path).exists(orphan)


def test_drgnet_command_line_has_the_db_and_user_groups():
    drgnet = Path(sys.executable).with_name("drgnet")
    for group in ("db", "user"):
        done = subprocess.run([str(drgnet), group, "--help"], capture_output=True, text=True, timeout=60)
        assert done.returncode == 0, done.stderr
        assert {"db": "upgrade", "user": "verify"}[group] in done.stdout


def test_gc_with_only_a_data_dir_uses_that_data_dirs_database(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """Without --url, ``--data-dir X`` means X's drgnet.db: gc must never judge X's files by another database."""
    import io

    from PIL import Image

    from db.ingest import image_store, ingest_image

    monkeypatch.delenv("DRGNET_DATABASE_URL", raising=False)
    monkeypatch.delenv("DRGNET_DATA_DIR", raising=False)
    monkeypatch.chdir(tmp_path)
    default, other = tmp_path / "data", tmp_path / "clinic"
    migrate.upgrade(f"sqlite:///{default / 'drgnet.db'}")  # ./data, the default: migrated and empty
    migrate.upgrade(f"sqlite:///{other / 'drgnet.db'}")  # another data dir
    photo = io.BytesIO()
    Image.new("RGB", (32, 24), (90, 20, 10)).save(photo, format="PNG")
    engine = make_engine(f"sqlite:///{other / 'drgnet.db'}")
    with make_sessionmaker(engine).begin() as session:
        sha = ingest_image(session, photo.getvalue(), "eye.png", data_dir=other).image.sha256
    engine.dispose()
    result = runner.invoke(db_app, ["gc", "--data-dir", str(other), "--min-age", "0"])
    assert result.exit_code == 0, result.output
    assert image_store(other).exists(sha)  # referenced by clinic/drgnet.db, so kept


def test_upgrade_with_a_data_dir_migrates_that_data_dirs_database(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.delenv("DRGNET_DATABASE_URL", raising=False)
    monkeypatch.delenv("DRGNET_DATA_DIR", raising=False)
    monkeypatch.chdir(tmp_path)
    result = runner.invoke(db_app, ["upgrade", "--data-dir", str(tmp_path / "clinic")])
    assert result.exit_code == 0, result.output
    assert (tmp_path / "clinic" / "drgnet.db").is_file() and not (tmp_path / "data").exists()
