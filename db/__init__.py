"""Persistence: SQLAlchemy models, sessions, repository functions, migrations, artifact store. No torch."""
