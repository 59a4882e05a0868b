"""``drgnet user ...``: user accounts of the review app (create, disable, passwords, lockouts)."""

from __future__ import annotations

import sys

import typer

from db.cli._session import _session
from db.cli_support import URL_HELP, command_group, fail

user_app = command_group("user", "User accounts of the review app.")


def _read_password(from_stdin: bool, *, confirm: bool) -> str:
    if from_stdin:
        line = sys.stdin.readline()
        password = line[:-1] if line.endswith("\n") else line
        return password[:-1] if password.endswith("\r") else password
    return typer.prompt("Password", hide_input=True, confirmation_prompt=confirm)


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
