"""Alembic's environment: run the revisions in versions/ on the connection hpoqueue hands over.

hpoqueue/storage/_schema.py is the only caller (`hpoqueue db upgrade`, and the scheduler's commands on open);
there is no alembic.ini. SQLite gets batch mode, so a later revision can alter a table by copying it.
"""

from __future__ import annotations

from alembic import context

from hpoqueue.storage._models import Base

connection = context.config.attributes.get("connection")
if connection is None:
    raise RuntimeError("hpoqueue's migrations run through `hpoqueue db upgrade`, not the alembic command")
context.configure(connection=connection, target_metadata=Base.metadata,
                  render_as_batch=connection.dialect.name == "sqlite")
with context.begin_transaction():
    context.run_migrations()
