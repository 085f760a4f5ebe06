"""Alembic environment: migrations run on the connection :func:`usage_tracker.store.db.migrate`
hands over, so start-up, tests and the CLI all migrate the same way."""

from __future__ import annotations

from alembic import context

from usage_tracker.store.schema import metadata

connection = context.config.attributes["connection"]
context.configure(
    connection=connection,
    target_metadata=metadata,
    render_as_batch=True,  # SQLite alters tables by copying them
    compare_type=True,
)
with context.begin_transaction():
    context.run_migrations()
