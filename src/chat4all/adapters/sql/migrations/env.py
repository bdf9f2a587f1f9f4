"""Alembic environment: runs on the connection that ``chat4all.adapters.sql.migrate`` hands over."""

from alembic import context

from chat4all.adapters.sql.schema import metadata

connection = context.config.attributes["connection"]
context.configure(connection=connection, target_metadata=metadata, render_as_batch=connection.dialect.name == "sqlite")
with context.begin_transaction():
    context.run_migrations()
