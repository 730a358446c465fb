"""The batch's columns as merge.py sends them to PostgreSQL."""

from __future__ import annotations

from dataclasses import fields

from agent_history.projector import merge
from agent_history.projector.core.fold import Execution
from agent_history.read_model.tables import agent_executions


def test_a_row_gives_every_stored_column_but_the_timestamps() -> None:
    # The copied rows are Execution's fields in order (merge._TYPES is built from them), and
    # they must be every column the table stores: one the fold does not give would be left to
    # its default by every write; the generated duration and the timestamps PostgreSQL fills.
    assert list(merge._TYPES) == [f.name for f in fields(Execution)]
    stored = {c.name for c in agent_executions.c if c.computed is None}
    assert set(merge._FIELDS) == stored - {"created_at", "updated_at"}


def test_the_copied_payloads_are_the_jsonb_columns() -> None:
    # Written as JSON text in each copied record; every other value goes as it is.
    assert [merge._FIELDS[i] for i in merge._PAYLOADS] == ["input_data", "output_data", "metadata"]
