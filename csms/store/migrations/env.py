"""Alembic environment: runs on the connection the caller passes in ``config.attributes["connection"]``."""

from alembic import context

from csms.store.models import Base

connection = context.config.attributes["connection"]
context.configure(
    connection=connection,
    target_metadata=Base.metadata,
    render_as_batch=connection.dialect.name == "sqlite",
    compare_type=True,
)
with context.begin_transaction():
    context.run_migrations()
