"""Every table of the schema is either in a bundle or left out with a reason: a new table cannot be forgotten."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import Column, Integer, MetaData, Table

from csms.migration.bundle_tables import EXCLUDED, EXPORTED, UnclassifiedTable, exported_tables
from csms.store.models import Base


def test_each_table_is_exported_or_excluded_with_a_reason():
    tables = set(Base.metadata.tables)
    assert set(EXPORTED) | set(EXCLUDED) == tables, "csms/migration/bundle_tables.py is out of step with the models"
    assert not set(EXPORTED) & set(EXCLUDED)
    assert all(reason.strip() for reason in EXCLUDED.values())


def test_a_new_table_stops_the_export_until_it_is_classified():
    metadata = MetaData()
    for table in Base.metadata.tables.values():
        table.to_metadata(metadata)
    Table("future_feature", metadata, Column("id", Integer, primary_key=True))
    with pytest.raises(UnclassifiedTable, match="future_feature"):
        exported_tables(metadata)


def test_parents_come_before_children():
    order = [table.name for table in exported_tables(Base.metadata)]
    assert order.index("stations") < order.index("connectors")
    assert order.index("transactions") < order.index("transaction_events")
    assert order.index("site_nodes") < order.index("site_evses")


def test_the_design_note_lists_every_table():
    note = (Path(__file__).parents[2] / "docs" / "design" / "migration.md").read_text()
    assert [name for name in [*EXPORTED, *EXCLUDED] if f"| `{name}` |" not in note] == []
