"""Crash safety: an ingesting process killed with SIGKILL never leaves a row without its file, nor a partial file
under a final name; garbage collection removes what it left behind."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from db.artifacts import TEMP_PREFIX, collect_garbage, image_store, sha256_hex
from db.models import Image

CHILD = Path(__file__).with_name("_support_ingest_child.py")
ROOT = Path(__file__).resolve().parents[2]
STALL_AT = 3


def _kill_at_stall(db_url: str, data_dir: Path, mode: str) -> tuple[list[str], list[str]]:
    """Run the child until it stalls on image STALL_AT, SIGKILL it; return (committed, written) hashes."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen(
        [sys.executable, str(CHILD), db_url, str(data_dir), "10", str(STALL_AT), mode],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    committed, written = [], []
    try:
        for line in proc.stdout:
            word, _, sha = line.strip().partition(" ")
            if word == "committed":
                committed.append(sha)
            elif word == "written":
                written.append(sha)
            if (mode == "after_write" and len(written) == STALL_AT + 1) or word == "writing":
                break
            assert word != "finished", "the child never stalled"
        else:
            pytest.fail(f"child ended early: {proc.stderr.read()}")
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
        proc.stdout.close()
        proc.stderr.close()
    assert proc.returncode == -signal.SIGKILL
    return committed, written


def _files(root: Path) -> tuple[list[Path], list[Path]]:
    everything = [p for p in root.rglob("*") if p.is_file()]
    temps = [p for p in everything if p.name.startswith(TEMP_PREFIX)]
    return [p for p in everything if p not in temps], temps


@pytest.mark.parametrize("mode", ["after_write", "during_write"])
def test_killed_ingest_leaves_consistent_rows_and_files(
    db_url: str, Session: sessionmaker[Session], data_dir: Path, mode: str
):
    committed, written = _kill_at_stall(db_url, data_dir, mode)
    assert len(committed) == STALL_AT

    with Session() as session:
        rows = session.scalars(select(Image)).all()
    # Only committed images have rows, and every row's file exists and has the right content.
    assert sorted(r.sha256 for r in rows) == sorted(committed)
    for row in rows:
        path = data_dir / row.path
        assert path.is_file() and sha256_hex(path.read_bytes()) == row.sha256

    store = image_store(data_dir)
    finals, temps = _files(store.root)
    # Whatever lies under a final name is complete: its content hashes to its name.
    for path in finals:
        assert sha256_hex(path.read_bytes()) == path.parent.name + path.name.removesuffix(".png")
    if mode == "after_write":
        orphan = written[-1]
        assert store.exists(orphan) and orphan not in committed  # stored, never committed
        assert temps == []
    else:
        assert len(temps) == 1 and len(finals) == STALL_AT  # the interrupted write never reached a final name

    with Session() as session:
        report = collect_garbage(session, data_dir, min_age_s=0, temp_min_age_s=0)["images"]
    finals, temps = _files(store.root)
    assert temps == []
    assert sorted(store.iter_files()) == sorted((sha, store.find(sha)) for sha in committed)
    assert len(report.removed) + len(report.temp_removed) == 1
