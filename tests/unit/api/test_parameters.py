"""The query models: RFC 3339 times, statuses under either name, and unknown names refused."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from pydantic import ValidationError

from agent_history.api.parameters import AgentListQuery, ExecutionQuery, StatsQuery


@pytest.mark.parametrize(
    "value",
    [
        "2025-01-15T10:30:00Z",
        "2025-01-15t10:30:00z",
        "2025-01-15T12:30:00+02:00",
        "2025-01-15T10:30:00.000000Z",
    ],
)
def test_rfc_3339_times_with_an_offset_are_read_in_utc(value: str) -> None:
    query = StatsQuery.model_validate({"started_after": value})
    assert query.started_after == datetime(2025, 1, 15, 10, 30, tzinfo=UTC)


@pytest.mark.parametrize(
    "value",
    [
        "0.5",
        "1736937000",
        "2025-01-15",
        "2025-01-15T10:30Z",
        "2025-01-15 10:30:00Z",
        "2025-01-15T10:30:00+0200",
        "2025-01-15T10:30:00",
    ],
)
@pytest.mark.parametrize("model", [StatsQuery, AgentListQuery])
def test_other_times_are_refused_by_lists_and_stats_alike(
    model: type[StatsQuery | AgentListQuery], value: str
) -> None:
    with pytest.raises(ValidationError) as refused:
        model.model_validate({"started_before": value})
    assert [error["loc"] for error in refused.value.errors()] == [("started_before",)]


def test_status_and_its_synonym_combine() -> None:
    query = AgentListQuery.model_validate({"status": ["failed"], "status_filter": ["running"]})
    assert query.statuses == {"failed", "running"}
    assert AgentListQuery().statuses == frozenset()


def test_unknown_names_are_refused_alone_naming_those_the_operation_takes() -> None:
    with pytest.raises(ValidationError) as refused:
        StatsQuery.model_validate({"zz": "1", "started_after": "soon", "aa": "2"})
    errors = refused.value.errors()
    assert [error["loc"] for error in errors] == [("aa",), ("zz",)]
    assert {error["msg"] for error in errors} == {
        "unknown parameter; this operation's query parameters: group_by, interval, "
        "started_after, started_before"
    }
    with pytest.raises(ValidationError, match="query parameters: none"):
        ExecutionQuery.model_validate({"limit": "1"})
