"""``drgnet db ...`` and ``drgnet user ...``: migrations, housekeeping and user accounts.

``drgnet`` (drgnet/cli.py) must not import this package (DESIGN.md §2), so these groups are registered through the
``drgnet.commands`` entry-point group in pyproject.toml and added to the command line at start-up. Every ``drgnet``
invocation loads this package, so it imports SQLAlchemy and Alembic only inside the commands that need them.

Modules: ``database`` (``drgnet db``), ``users`` (``drgnet user``), ``_session`` (the transaction both use).
"""

from db.cli.database import db_app
from db.cli.users import user_app

__all__ = ["db_app", "user_app"]
