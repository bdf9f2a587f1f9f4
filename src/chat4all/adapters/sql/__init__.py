"""SQLite and PostgreSQL through SQLAlchemy Core (async), with Alembic migrations."""
