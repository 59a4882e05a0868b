"""``drgnet db ...`` and ``drgnet user ...``: migrations, housekeeping and user accounts.

``drgnet`` (drgnet/cli.py) must not import this package (DESIGN.md §2), so these groups are registered through the
``drgnet.commands`` entry-point group in pyproject.toml and added to the command line at start-up. Every ``drgnet``
invocation loads this module, so it imports SQLAlchemy and Alembic only inside the commands that need them.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

import typer

from db.cli_support import URL_HELP, command_group, fail, operated_engine

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

db_app = command_group("db", "The database: migrations and artifact housekeeping.")
user_app = command_group("user", "User accounts of the review app.")


def _where(url: str | None, data_dir: Path | None = None) -> str:
    from db.engine import database_url

    try:
        return database_url(url, data_directory=data_dir).render_as_string(hide_password=True)
    except ValueError as exc:
        fail(str(exc))


@contextmanager
def _session(url: str | None, data_dir: Path | None = None) -> Iterator[Session]:
    """One transaction on a database that is migrated to head; errors become messages a user can act on.

    Without a URL (and no ``DRGNET_DATABASE_URL``) the SQLite file of ``data_dir`` is used.
    """
    from sqlalchemy.exc import SQLAlchemyError

    from db.engine import make_sessionmaker

    with operated_engine(url, data_dir) as engine:
        try:
            with make_sessionmaker(engine).begin() as session:
                yield session
        except (ValueError, LookupError) as exc:
            fail(str(exc.args[0]) if exc.args else str(exc))
        except SQLAlchemyError as exc:
            # The driver's message only: the statement's parameters (a password hash, say) stay out of the terminal.
            fail(f"database error on {_where(url, data_dir)}: {getattr(exc, 'orig', None) or type(exc).__name__}")


def _read_password(from_stdin: bool, *, confirm: bool) -> str:
    if from_stdin:
        line = sys.stdin.readline()
        password = line[:-1] if line.endswith("\n") else line
        return password[:-1] if password.endswith("\r") else password
    return typer.prompt("Password", hide_input=True, confirmation_prompt=confirm)


# ---------------------------------------------------------------------------------------------------------- db ...


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


# -------------------------------------------------------------------------------------------------------- user ...


@user_app.command("add")
def user_add(
    name: str = typer.Argument(..., help="User name (letters, digits, '.', '_', '-', '@')."),
    role: str = typer.Option(
        ..., "--role", metavar="clinician|admin", help="clinician: reviews and annotates; admin: also manages."
    ),
    password_stdin: bool = typer.Option(False, "--password-stdin", help="Read the password from standard input."),
    url: str | None = typer.Option(None, "--url", help=URL_HELP),
) -> None:
    """Create a user; the password is prompted for twice (or read from stdin) and stored as an argon2id hash.

    The password needs at least 12 characters and must be hard to guess (zxcvbn strength 3 of 4).
    """
    from db import repository

    password = _read_password(password_stdin, confirm=True)
    with _session(url) as session:
        user = repository.create_user(session, name, password, role)
        summary = f"created {user.role.value} {user.username!r} (id {user.id})"
    typer.echo(summary)


@user_app.command("verify")
def user_verify(
    name: str = typer.Argument(..., help="User name."),
    password_stdin: bool = typer.Option(False, "--password-stdin", help="Read the password from standard input."),
    url: str | None = typer.Option(None, "--url", help=URL_HELP),
) -> None:
    """Check a password: exit code 0 if it is right and the account active, 1 otherwise.

    For operators on the server (who can reach the database anyway): not throttled like the app's sign-in, but
    audited the same way.
    """
    from db import repository

    password = _read_password(password_stdin, confirm=False)
    with _session(url) as session:
        ok = repository.verify_password(session, name, password) is not None
    # Outside the transaction: the audit entry of the attempt must commit whatever the outcome.
    if not ok:
        typer.echo(f"{name}: wrong user name or password, or the account is disabled", err=True)
        raise typer.Exit(code=1)
    typer.echo(f"{name}: password ok")


@user_app.command("disable")
def user_disable(
    name: str = typer.Argument(..., help="User name."),
    url: str | None = typer.Option(None, "--url", help=URL_HELP),
) -> None:
    """Disable an account (it can no longer sign in; its annotations stay)."""
    from db import repository

    with _session(url) as session:
        repository.disable_user(session, name)
    typer.echo(f"{name}: disabled")


@user_app.command("unlock")
def user_unlock(
    name: str | None = typer.Argument(None, help="User name whose lockout to lift."),
    client: str | None = typer.Option(None, "--client", help="A client address to unlock instead of an account."),
    url: str | None = typer.Option(None, "--url", help=URL_HELP),
) -> None:
    """Lift a lockout caused by too many failed sign-ins (of an account, or of a client with --client)."""
    from db import accounts

    if (name is None) == (client is None):
        fail("give either a user name or --client ADDRESS")
    with _session(url) as session:
        was_locked = accounts.unlock(session, username=name, client=client)
    what = name if name is not None else f"client {client}"
    typer.echo(f"{what}: unlocked" if was_locked else f"{what}: was not locked (failed sign-ins forgotten)")


@user_app.command("reset-password")
def user_reset_password(
    name: str = typer.Argument(..., help="User name."),
    password_stdin: bool = typer.Option(
        False, "--password-stdin", help="Read the temporary password from standard input (default: generate one)."
    ),
    url: str | None = typer.Option(None, "--url", help=URL_HELP),
) -> None:
    """Set a temporary password that must be changed at the next sign-in; ends the user's sessions, lifts a lockout."""
    from db import accounts

    given = _read_password(True, confirm=False) if password_stdin else None
    with _session(url) as session:
        temporary = accounts.reset_password(session, name, new_password=given)
    if given is None:
        typer.echo(f"{name}: temporary password (shown once; must be changed at the next sign-in): {temporary}")
    else:
        typer.echo(f"{name}: temporary password set; it must be changed at the next sign-in")


@user_app.command("list")
def user_list(url: str | None = typer.Option(None, "--url", help=URL_HELP)) -> None:
    """List users: name, role, whether active, when created, and a lockout or a pending password change."""
    from db import accounts, repository

    with _session(url) as session:
        locked = {r.key for r in accounts.locked_out(session) if r.scope.value == "account"}
        rows = [
            (u.username, u.role.value, u.active, u.created_at, u.username in locked, u.must_change_password)
            for u in repository.list_users(session)
        ]
        clients = [r.key for r in accounts.locked_out(session) if r.scope.value == "client"]
    if not rows:
        typer.echo("no users yet: add one with `drgnet user add NAME --role admin`")
        return
    width = max(len(r[0]) for r in rows)
    for username, role, active, created, is_locked, must_change in rows:
        state = "active" if active else "disabled"
        notes = ("  locked" if is_locked else "") + ("  must-change-password" if must_change else "")
        typer.echo(f"{username:<{width}}  {role:<9}  {state:<8}  {created:%Y-%m-%d %H:%M} UTC{notes}")
    for client in clients:
        typer.echo(f"locked client: {client} (`drgnet user unlock --client {client}`)")
