"""The pure parts of the list filters and the tree: metadata documents, bound names, cursor
fingerprints, depth-first order."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any, cast
from uuid import UUID

import pytest
from sqlalchemy import RowMapping

from agent_history.api.cursor import fingerprint
from agent_history.api.filters import ExecutionFilter, metadata_documents
from agent_history.api.paging import query_fingerprint
from agent_history.api.trees import depth_first


@pytest.mark.parametrize(
    ("value", "documents"),
    [
        ("finance", [{"k": "finance"}]),
        ("", [{"k": ""}]),
        ("2", [{"k": "2"}, {"k": 2}]),
        ("-0.5e3", [{"k": "-0.5e3"}, {"k": -500.0}]),
        ("true", [{"k": "true"}, {"k": True}]),
        ("false", [{"k": "false"}, {"k": False}]),
        # Not JSON's literals or numbers: strings only.
        ("True", [{"k": "True"}]),
        ("NaN", [{"k": "NaN"}]),
        ("Infinity", [{"k": "Infinity"}]),
        ("01", [{"k": "01"}]),
        ("1.", [{"k": "1."}]),
        ("+1", [{"k": "+1"}]),
        (" 1", [{"k": " 1"}]),
        ("null", [{"k": "null"}]),
        # Beyond what PostgreSQL's numeric takes: no stored number is, so a string only.
        ("1e99999", [{"k": "1e99999"}]),
    ],
)
def test_a_metadata_value_matches_the_string_and_the_literal_it_spells(
    value: str, documents: list[dict[str, Any]]
) -> None:
    assert [json.loads(d) for d in metadata_documents("k", value)] == documents


def test_metadata_keys_are_escaped_as_json() -> None:
    (document, number) = metadata_documents('a"b\\c', "1")
    assert json.loads(document) == {'a"b\\c': "1"}
    assert json.loads(number) == {'a"b\\c': 1}


def test_a_filter_binds_only_what_it_has() -> None:
    assert ExecutionFilter(agent_id=UUID(int=1)).bound() == {"agent_id": UUID(int=1)}
    where = ExecutionFilter(
        tags=frozenset({"b", "a"}),
        metadata=frozenset({("x", "1"), ("team", "ops")}),
        model="m",
        parent_execution_id=UUID(int=2),
        root=True,
    )
    bound = where.bound()
    assert bound["tags"] == ["a", "b"]
    assert (bound["model"], bound["parent_execution_id"], bound["roots_only"]) == (
        "m",
        UUID(int=2),
        True,
    )
    # Numbered in key order, so one set of pairs always makes one statement.
    assert [json.loads(d) for d in bound["metadata_0"]] == [{"team": "ops"}]
    assert [json.loads(d) for d in bound["metadata_1"]] == [{"x": "1"}, {"x": 1}]
    assert "children_only" not in bound
    assert ExecutionFilter(root=False).bound() == {"children_only": True}


def test_a_query_without_the_added_filters_keeps_its_fingerprint() -> None:
    """Cursors issued before the filters on what runs carry existed still continue."""
    where = ExecutionFilter(agent_id=UUID(int=1), statuses=frozenset({"failed"}))
    before = fingerprint(
        {
            "agent_id": UUID(int=1),
            "user_id": None,
            "owner_id": None,
            "statuses": ["failed"],
            "started_after": None,
            "started_before": None,
            "order": "desc",
        }
    )
    assert query_fingerprint(where, "desc") == before


@pytest.mark.parametrize(
    "change",
    [
        {"tags": frozenset({"a"})},
        {"metadata": frozenset({("k", "v")})},
        {"model": "m"},
        {"parent_execution_id": UUID(int=3)},
        {"root": True},
        {"root": False},
    ],
)
def test_each_added_filter_changes_the_fingerprint(change: dict[str, Any]) -> None:
    where = ExecutionFilter(agent_id=UUID(int=1))
    changed = ExecutionFilter(agent_id=UUID(int=1), **change)
    assert query_fingerprint(changed, "desc") != query_fingerprint(where, "desc")


T0 = datetime(2025, 1, 15, tzinfo=UTC)


def _row(n: int, parent: int | None, second: int = 0) -> RowMapping:
    row = {
        "id": UUID(int=n),
        "parent_execution_id": None if parent is None else UUID(int=parent),
        "execution_start": T0 + timedelta(seconds=second),
    }
    return cast(RowMapping, row)


def test_a_tree_is_depth_first_with_children_oldest_first() -> None:
    # 1 -> (3 at 5 s, 2 at 1 s); 2 -> 4; 3 -> (6, 5 at the same time: by id)
    rows = [
        _row(1, None),
        _row(3, 1, 5),
        _row(2, 1, 1),
        _row(6, 3, 9),
        _row(5, 3, 9),
        _row(4, 2, 2),
    ]
    assert [row["id"].int for row in depth_first(rows)] == [1, 2, 4, 3, 5, 6]
    assert depth_first([]) == []


def test_a_row_whose_parent_is_missing_is_left_out() -> None:
    rows = [_row(1, None), _row(2, 1), _row(3, 99)]
    assert [row["id"].int for row in depth_first(rows)] == [1, 2]
