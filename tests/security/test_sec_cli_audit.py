"""Audit (issue 16, item 9): command-line actions record the operating-system user as their operator, and
``drgnet db gc`` records what it deleted; on SQLite and PostgreSQL."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from typer.testing import CliRunner

from db import migrate
from db import repository as repo
from db.artifacts import artifact_store, image_store
from db.cli import db_app, user_app
from db.engine import make_engine, make_sessionmaker
from db.operator import os_user

runner = CliRunner()


def _entries(url: str, action: str) -> list:
    engine = make_engine(url)
    try:
        with make_sessionmaker(engine)() as session:
            return repo.audit_entries(session, action=action)
    finally:
        engine.dispose()


def test_cli_user_creation_names_the_os_user_as_operator(db_url: str) -> None:
    migrate.upgrade(db_url)
    result = runner.invoke(
        user_app,
        ["add", "ana", "--role", "admin", "--password-stdin", "--url", db_url],
        input="mauve-otter-quietly-42\n",
    )
    assert result.exit_code == 0, result.output
    (entry,) = _entries(db_url, "user.create")
    assert entry.user_id is None  # no account did it ...
    assert entry.details["operator"].startswith(f"os:{os_user()}@")  # ... the OS user at a terminal did
    assert "drgnet" in entry.details["operator"] or "user add" in entry.details["operator"]


def test_db_gc_deletions_are_audited(db_url: str, tmp_path: Path) -> None:
    migrate.upgrade(db_url)
    data = tmp_path / "data"
    orphan_map = artifact_store(data).put_png(np.zeros((4, 4), np.uint8))
    orphan_photo = image_store(data).put_bytes(b"not referenced by any row", "png")
    dry = runner.invoke(db_app, ["gc", "--url", db_url, "--data-dir", str(data), "--min-age", "0", "--dry-run"])
    assert dry.exit_code == 0, dry.output
    assert _entries(db_url, "storage.gc") == []  # nothing deleted, nothing to record
    result = runner.invoke(db_app, ["gc", "--url", db_url, "--data-dir", str(data), "--min-age", "0"])
    assert result.exit_code == 0, result.output
    (entry,) = _entries(db_url, "storage.gc")
    assert entry.details["artifacts"]["hashes"] == [orphan_map] and entry.details["images"]["hashes"] == [orphan_photo]
    assert entry.details["images"]["removed"] == 1 and entry.details["artifacts"]["removed"] == 1
    assert entry.details["bytes_freed"] > 0
    assert entry.details["operator"].startswith(f"os:{os_user()}@")
    assert not artifact_store(data).exists(orphan_map) and not image_store(data).exists(orphan_photo)
