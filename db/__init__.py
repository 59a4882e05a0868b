"""Persistence: SQLAlchemy models, sessions, repository functions, migrations, artifact store. No torch.

- :mod:`db.models`: the tables (SQLAlchemy 2.0 declarative), one module per group of tables.
- :mod:`db.engine`: ``make_engine`` / ``make_sessionmaker`` from ``DRGNET_DATABASE_URL`` (default SQLite file).
- :mod:`db.repository`: every read and write of rows, one module per aggregate; each write audited. No other module,
  in ``db`` or outside it, runs a query of its own (``tests/db/test_db_queries_in_repository.py`` checks ``db``): the
  other modules hold rules (:mod:`db.accounts`) or files (:mod:`db.artifacts`) and call the repository. Only the
  schema and the connection are set up elsewhere: migrations, ``db.engine``'s PRAGMAs, the models' DDL.
- :mod:`db.accounts`: sign-in rules (throttling, sessions, password changes) applied through the repository.
- :mod:`db.ingest`: uploaded photographs -> stored, stripped, deduplicated images.
- :mod:`db.artifacts`: content-addressed masks and maps on disk, and their garbage collection.
- :mod:`db.migrate`: Alembic migrations (``db/migrations``) run from Python; ``drgnet db upgrade``.
- :mod:`db.cli`: the ``drgnet db`` and ``drgnet user`` command groups, one module each.
"""
