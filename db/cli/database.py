"""``drgnet db ...``: migrations and artifact housekeeping."""

from __future__ import annotations

from pathlib import Path

import typer

from db.cli._session import _session, _where
from db.cli_support import URL_HELP, command_group, fail

db_app = command_group("db", "The database: migrations and artifact housekeeping.")


@db_app.command("upgrade")
def db_upgrade(
    revision: str = typer.Argument("head", help="Target revision."),
    url: str | None = typer.Option(None, "--url", help=URL_HELP),
    data_dir: Path | None = typer.Option(
        None, "--data-dir", envvar="DRGNET_DATA_DIR", help="Data directory whose drgnet.db to use without --url."
    ),
) -> None:
    """Create or migrate the database schema (the SQLite file and its folder are created on first use)."""
    from sqlalchemy.exc import OperationalError

    from db import migrate
    from db.engine import database_url

    if url is None and data_dir is not None:
        try:
            url = database_url(None, data_directory=data_dir).render_as_string(hide_password=False)
        except ValueError as exc:
            fail(str(exc))
    where = _where(url)
    try:
        migrate.upgrade(url, revision)
    except OperationalError as exc:
        fail(f"cannot migrate {where}: {exc.orig}")
    except Exception as exc:  # alembic reports unknown revisions as CommandError / ResolutionError
        fail(f"cannot migrate {where} to {revision!r}: {exc}")
    typer.echo(f"{where}: at revision {migrate.current_revision(url)}")


@db_app.command("downgrade")
def db_downgrade(
    revision: str = typer.Argument(..., help="Target revision; 'base' removes every table (and all data)."),
    url: str | None = typer.Option(None, "--url", help=URL_HELP),
) -> None:
    """Migrate the database schema down to REVISION."""
    from sqlalchemy.exc import OperationalError

    from db import migrate

    where = _where(url)
    try:
        migrate.downgrade(revision, url)
    except OperationalError as exc:
        fail(f"cannot migrate {where}: {exc.orig}")
    except Exception as exc:
        fail(f"cannot migrate {where} to {revision!r}: {exc}")
    typer.echo(f"{where}: at revision {migrate.current_revision(url) or 'base (empty)'}")


@db_app.command("current")
def db_current(url: str | None = typer.Option(None, "--url", help=URL_HELP)) -> None:
    """Show the database's schema revision and the code's newest one."""
    from sqlalchemy.exc import OperationalError

    from db import migrate

    where = _where(url)
    try:
        current = migrate.current_revision(url)
    except OperationalError as exc:
        fail(f"cannot reach the database {where}: {exc.orig}")
    head = migrate.head_revision()
    state = "up to date" if current == head else "run `drgnet db upgrade`"
    typer.echo(f"{where}: revision {current or 'none'} (code head {head}; {state})")


@db_app.command("gc")
def db_gc(
    url: str | None = typer.Option(None, "--url", help=URL_HELP),
    data_dir: Path | None = typer.Option(
        None, "--data-dir", envvar="DRGNET_DATA_DIR", help="Data directory (default ./data)."
    ),
    min_age: float = typer.Option(
        3600.0, "--min-age", min=0, help="Keep unreferenced files younger than this many seconds."
    ),
    dry_run: bool = typer.Option(False, "--dry-run", help="Only report what would be removed."),
) -> None:
    """Remove stored files (photographs, masks, maps) that no database row refers to."""
    from db.artifacts import collect_garbage

    with _session(url, data_dir) as session:
        reports = collect_garbage(session, data_dir, min_age_s=min_age, dry_run=dry_run)
    verb = "would remove" if dry_run else "removed"
    for store, report in reports.items():
        typer.echo(
            f"{store}: {verb} {len(report.removed)} unreferenced and {len(report.temp_removed)} temporary files "
            f"({report.bytes_freed / 1e6:.1f} MB); kept {report.kept}"
        )
