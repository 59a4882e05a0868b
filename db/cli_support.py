"""What the command-line groups of ``db`` and ``feedback`` share: Typer groups, errors as messages, the database.

Both are loaded by every ``drgnet`` invocation (entry points), so SQLAlchemy and Alembic are imported only inside
the functions that need them.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, NoReturn

import typer

if TYPE_CHECKING:
    from sqlalchemy.engine import Engine

URL_HELP = "Database URL (default: $DRGNET_DATABASE_URL, else the SQLite file <data dir>/drgnet.db)."


def command_group(name: str, help: str) -> typer.Typer:
    """A Typer sub-command group that prints its help when called bare and shows errors without a traceback."""
    return typer.Typer(name=name, help=help, no_args_is_help=True, add_completion=False, pretty_exceptions_enable=False)


def fail(message: str, code: int = 2) -> NoReturn:
    """Print ``error: message`` to stderr and end the command with ``code``."""
    typer.secho(f"error: {message}", fg=typer.colors.RED, err=True)
    raise typer.Exit(code=code)


def command_path() -> str:
    """``drgnet db gc`` and the like: the command being run, for the audit log."""
    import click

    ctx = click.get_current_context(silent=True)
    return ctx.command_path if ctx is not None else "drgnet"


@contextmanager
def operated_engine(url: str | None, data_dir: Path | None = None) -> Iterator[Engine]:
    """An engine on a database migrated to head, disposed of at the end; a bad URL becomes an error message.

    Audit entries written inside the block name the operating-system user who ran the command.
    """
    from db import migrate
    from db.operator import cli_operator, operator_scope

    try:
        engine = migrate.open_current(url, data_directory=data_dir)
    except ValueError as exc:
        fail(str(exc))
    try:
        with operator_scope(cli_operator(command_path())):
            yield engine
    finally:
        engine.dispose()
