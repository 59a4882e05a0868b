"""Persistence: SQLAlchemy models, sessions, repository functions, migrations, artifact store. No torch.

- :mod:`db.models`: the tables (SQLAlchemy 2.0 declarative), one module per group of tables.
- :mod:`db.engine`: ``make_engine`` / ``make_sessionmaker`` from ``DRGNET_DATABASE_URL`` (default SQLite file).
- :mod:`db.repository`: every read and write of the app, the feedback layer and the worker, one module per aggregate;
  each write audited. Nothing outside ``db`` runs a query of its own.
- :mod:`db.ingest`: uploaded photographs -> stored, stripped, deduplicated images.
- :mod:`db.artifacts`: content-addressed masks and maps on disk, and their garbage collection.
- :mod:`db.migrate`: Alembic migrations (``db/migrations``) run from Python; ``drgnet db upgrade``.
- :mod:`db.cli`: the ``drgnet db`` and ``drgnet user`` command groups.
"""
