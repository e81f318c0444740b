"""Alembic environment: runs on the connection the caller passes in ``config.attributes["connection"]``."""

from collections.abc import Callable

from alembic import context
from alembic.operations.batch import ApplyBatchImpl

from csms.store.models import Base


def _indexes_by_name(grab: Callable[[ApplyBatchImpl], None]) -> Callable[[ApplyBatchImpl], None]:
    """A batch migration on SQLite copies the table and creates its indexes again, in the order of the reflected
    table's ``indexes``: a set, whose order changes from one process to the next (``sites`` got its two indexes
    either way round in ``sqlite_master``, so two new databases differed). By name, every time."""

    def by_name(self: ApplyBatchImpl) -> None:
        grab(self)
        self.indexes = dict(sorted(self.indexes.items()))

    by_name.by_name = True  # type: ignore[attr-defined]
    return by_name


if not getattr(ApplyBatchImpl._grab_table_elements, "by_name", False):  # this file runs at every upgrade
    ApplyBatchImpl._grab_table_elements = _indexes_by_name(ApplyBatchImpl._grab_table_elements)  # type: ignore[method-assign,assignment]

connection = context.config.attributes["connection"]
context.configure(
    connection=connection,
    target_metadata=Base.metadata,
    render_as_batch=connection.dialect.name == "sqlite",
    compare_type=True,
)
with context.begin_transaction():
    context.run_migrations()
