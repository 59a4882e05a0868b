"""``drgnet app``: run the review app (``streamlit run webapp/main.py``) with headless server options.

The app never changes the schema on its own: a database that is not at the code's revision is refused with the
command that fixes it (``drgnet db upgrade``), unless ``--migrate`` (or ``--seed-demo``) asks for the migration.
A migration is a decision (back up first; other processes must be on the same code), not a side effect of a restart.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import typer

from db.cli_support import fail
from db.engine import DATA_DIR_ENV, database_url

MAIN = Path(__file__).resolve().parent / "main.py"


def streamlit_command(port: int, address: str) -> list[str]:
    """The ``streamlit run`` command line for the app."""
    return [
        sys.executable,
        "-m",
        "streamlit",
        "run",
        str(MAIN),
        "--server.port",
        str(port),
        "--server.address",
        address,
        "--server.headless",
        "true",
        "--server.fileWatcherType",
        "none",
        "--browser.gatherUsageStats",
        "false",
        "--client.toolbarMode",
        "minimal",
        # One script runner per browser session, which folds a new request into the pending one (see
        # webapp/streamlit_fix.py); fast reruns start a second runner and a click's trigger can be lost between them.
        "--runner.fastReruns",
        "false",
        # No full garbage collection after every run (about 0.4 s with the GIL held; see webapp/streamlit_fix.py).
        "--runner.postScriptGC",
        "false",
    ]


def _check_schema(url: Any, migrate_db: bool) -> None:
    """Migrate when asked; otherwise refuse a database that is not at the code's revision."""
    from sqlalchemy.exc import OperationalError

    from db import migrate

    where = url.render_as_string(hide_password=True)
    try:
        if migrate_db:
            migrate.upgrade(url)
        current, head = migrate.current_revision(url), migrate.head_revision()
    except OperationalError as exc:
        fail(f"cannot reach the database {where}: {exc.orig}")
    except Exception as exc:  # alembic's errors (an unknown revision in the database, say)
        fail(f"cannot migrate {where}: {exc}")
    if current != head:
        state = "has no DRG-Net tables yet" if current is None else f"is at revision {current}"
        fail(
            f"the database {where} {state}, but this code needs {head}: run `drgnet db upgrade` "
            "(after a backup), or start the app with --migrate"
        )


def app(
    port: int = typer.Option(8501, "--port", help="Port to serve on."),
    data_dir: Path | None = typer.Option(None, "--data-dir", help="Data directory (default: DRGNET_DATA_DIR, ./data)."),
    address: str = typer.Option("localhost", "--address", help="Interface to listen on (0.0.0.0 for all)."),
    seed_demo: bool = typer.Option(
        False, "--seed-demo", help="First migrate the database, register the demo model, create accounts, add images."
    ),
    demo_images: int = typer.Option(30, "--demo-images", help="Photographs to add with --seed-demo."),
    migrate_db: bool = typer.Option(
        False, "--migrate", help="Migrate the database to the code's revision first (default: refuse to start)."
    ),
    session_idle_minutes: float | None = typer.Option(
        None,
        "--session-idle-minutes",
        min=0.01,
        help="Sign a session out after this many idle minutes (default: DRGNET_SESSION_IDLE_MINUTES, else 30).",
    ),
) -> None:
    """Run the clinician review app in the foreground (Ctrl+C stops it)."""
    from db.accounts import AccountPolicy

    if data_dir is not None:
        os.environ[DATA_DIR_ENV] = str(data_dir.resolve())
    if session_idle_minutes is not None:
        os.environ["DRGNET_SESSION_IDLE_MINUTES"] = str(session_idle_minutes)
    try:
        AccountPolicy.from_env()  # a bad setting stops here, not at the first sign-in
        url = database_url()
    except ValueError as exc:
        fail(str(exc))
    if seed_demo:
        from feedback.demo_seed import seed_demo as run_seed

        run_seed(Path(os.environ.get(DATA_DIR_ENV) or "data"), n_images=demo_images, log=typer.echo)
    _check_schema(url, migrate_db)
    typer.echo(f"DRG-Net review app on http://{'localhost' if address in ('0.0.0.0', '') else address}:{port}")
    try:
        code = subprocess.call(streamlit_command(port, address), env=os.environ.copy())
    except KeyboardInterrupt:
        code = 0
    raise typer.Exit(code)
