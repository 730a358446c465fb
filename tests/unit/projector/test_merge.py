"""The batch's columns as merge.py sends them to PostgreSQL."""

from __future__ import annotations

from dataclasses import fields

from agent_history.projector import merge
from agent_history.projector.core.fold import Execution


def test_every_field_of_a_row_has_its_column_type_in_order() -> None:
    # The copied rows are Execution's fields in order, into a table of these columns.
    assert list(merge._TYPES) == [f.name for f in fields(Execution)]


def test_the_copied_payloads_are_the_jsonb_columns() -> None:
    # Written as JSON text in each copied record; every other value goes as it is.
    assert [merge._FIELDS[i] for i in merge._PAYLOADS] == ["input_data", "output_data", "metadata"]
