"""Which executions a request covers, and the SQL conditions that say so.

Each condition is on bound parameters of its own name. Statements are built from these once per
shape (which conditions, order, payloads, cursor or not) and cached, so a request only binds its
values: building and hashing a new statement each time would cost more than PostgreSQL takes to
run it.

The filters on what a run carries are written for the indexes of migration 0005: ``tags @>
ARRAY[...]`` for the GIN index over tags, ``metadata @> ANY(ARRAY[...]::jsonb[])`` for the GIN
(jsonb_path_ops) index over metadata (a bitmap scan per candidate document), and
``parent_execution_id = ...`` for the children index.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any
from uuid import UUID

from sqlalchemy import ColumnElement, Text, any_, bindparam, cast
from sqlalchemy.dialects.postgresql import ARRAY, JSONB

from agent_history.read_model.tables import agent_executions

_e = agent_executions

# The conditions of a fixed name; a metadata filter's are numbered (``metadata_0``, ...).
_CONDITIONS: dict[str, ColumnElement[bool]] = {
    "agent_id": _e.c.agent_id == bindparam("agent_id"),
    "user_id": _e.c.user_id == bindparam("user_id"),
    "owner_id": _e.c.user_id == bindparam("owner_id"),
    # = ANY(array), not IN (expanding): one statement text whatever the number of statuses, so
    # it compiles once for asyncpg (read_model.prepared.prepare). PostgreSQL plans both alike.
    "statuses": _e.c.status == any_(bindparam("statuses", type_=ARRAY(Text))),
    "started_after": _e.c.execution_start >= bindparam("started_after"),
    "started_before": _e.c.execution_start < bindparam("started_before"),
    "tags": _e.c.tags.contains(bindparam("tags", type_=ARRAY(Text))),
    "model": _e.c.model == bindparam("model"),
    "parent_execution_id": _e.c.parent_execution_id == bindparam("parent_execution_id"),
    # Bound to True (a name needs a value to be present); the condition uses none.
    "roots_only": _e.c.parent_execution_id.is_(None),
    "children_only": _e.c.parent_execution_id.is_not(None),
}
_METADATA = "metadata_"
# The names whose totals the status-count tables hold (see api.queries).
COUNTED = frozenset({"agent_id", "user_id", "owner_id", "statuses"})

# A JSON number (RFC 8259), and how far from 1 its exponent may be for PostgreSQL's numeric
# (which refuses larger ones): no stored metadata number comes near it.
_JSON_NUMBER = re.compile(r"-?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?")
_MAX_EXPONENT = 1000


def metadata_documents(key: str, value: str) -> list[str]:
    """The JSON objects that ``metadata.KEY=VALUE`` matches by containment: the string VALUE,
    and the number or boolean VALUE is the JSON text of (a number compares as a number, so
    ``1.50`` also finds 1.5)."""
    documents = [json.dumps({key: value})]
    literal = value in ("true", "false")
    if _JSON_NUMBER.fullmatch(value):
        literal = abs(Decimal(value).adjusted()) <= _MAX_EXPONENT
    if literal:
        documents.append(f"{{{json.dumps(key)}: {value}}}")
    return documents


@dataclass(frozen=True)
class ExecutionFilter:
    """Which executions a request covers; each field given narrows it further."""

    agent_id: UUID | None = None
    user_id: UUID | None = None
    # The caller's own user id, unless the caller may read every user's executions.
    owner_id: UUID | None = None
    statuses: frozenset[str] = frozenset()
    started_after: datetime | None = None  # inclusive
    started_before: datetime | None = None  # exclusive
    # Every one of these tags.
    tags: frozenset[str] = frozenset()
    # Every (key, value) pair: the metadata value at key is value, or a number or boolean whose
    # JSON text value is (metadata_documents).
    metadata: frozenset[tuple[str, str]] = frozenset()
    model: str | None = None
    parent_execution_id: UUID | None = None
    # True: runs without a parent only; False: runs with one only; None: both.
    root: bool | None = None

    def bound(self) -> dict[str, Any]:
        """The values of the conditions this filter has, by name (see ``conditions``)."""
        values: dict[str, Any] = {
            "agent_id": self.agent_id,
            "user_id": self.user_id,
            "owner_id": None if self.owner_id == self.user_id else self.owner_id,
            "statuses": sorted(self.statuses) or None,
            "started_after": self.started_after,
            "started_before": self.started_before,
            "tags": sorted(self.tags) or None,
            "model": self.model,
            "parent_execution_id": self.parent_execution_id,
            "roots_only": True if self.root is True else None,
            "children_only": True if self.root is False else None,
        }
        for n, (key, value) in enumerate(sorted(self.metadata)):
            values[f"{_METADATA}{n}"] = metadata_documents(key, value)
        return {name: value for name, value in values.items() if value is not None}


def conditions(names: Iterable[str]) -> list[ColumnElement[bool]]:
    """The conditions of a filter whose ``bound()`` has these names."""
    return [_condition(name) for name in names]


def _condition(name: str) -> ColumnElement[bool]:
    if name.startswith(_METADATA):
        documents = cast(bindparam(name, type_=ARRAY(Text)), ARRAY(JSONB))
        return _e.c.metadata.contains(any_(documents))
    return _CONDITIONS[name]
