"""The query models: RFC 3339 times, statuses under either name, and unknown names refused."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from pydantic import ValidationError

from agent_history.api.parameters import AgentListQuery, ExecutionQuery, StatsQuery, TreeQuery


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("0001-01-01T00:00:04+05:00", datetime.min.replace(tzinfo=UTC)),
        ("9999-12-31T23:00:00-05:00", datetime.max.replace(tzinfo=UTC)),
    ],
)
def test_a_time_outside_the_years_a_run_can_have_in_utc_is_the_nearest_that_is(
    value: str, expected: datetime
) -> None:
    """Valid RFC 3339, outside years 1 to 9999 once in UTC: as a bound it means the nearest
    instant a run can have, not a 422 (schemathesis found one on the export)."""
    query = StatsQuery.model_validate({"started_before": value})
    assert query.started_before == expected


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


def test_metadata_parameters_are_taken_by_key_and_repeatable() -> None:
    query = AgentListQuery.model_validate(
        {"metadata.team": "finance", "metadata.n": ["1", "2"], "metadata.a.b": "", "limit": "5"}
    )
    assert query.metadata_filters == {("team", "finance"), ("n", "1"), ("n", "2"), ("a.b", "")}
    assert query.limit == 5
    assert AgentListQuery().metadata_filters == frozenset()


@pytest.mark.parametrize(
    ("name", "value", "reason"),
    [
        ("metadata.", "x", "give a metadata key after 'metadata.'"),
        ("metadata." + "k" * 201, "x", "at most 200 characters"),
        ("metadata.k", "a\x00b", "NUL"),
    ],
)
def test_a_bad_metadata_parameter_is_refused_by_name(name: str, value: str, reason: str) -> None:
    with pytest.raises(ValidationError) as refused:
        AgentListQuery.model_validate({name: value, "metadata.ok": "1"})
    (error,) = refused.value.errors()
    assert error["loc"] == (name,)
    assert reason in error["msg"]


def test_metadata_errors_come_with_the_other_invalid_parameters() -> None:
    with pytest.raises(ValidationError) as refused:
        AgentListQuery.model_validate({"metadata.": "x", "limit": "0"})
    assert sorted(error["loc"] for error in refused.value.errors()) == [("limit",), ("metadata.",)]


def test_too_many_metadata_filters_are_refused() -> None:
    with pytest.raises(ValidationError, match="at most 64 metadata filters"):
        AgentListQuery.model_validate({f"metadata.k{n}": "v" for n in range(65)})


def test_the_lists_name_their_metadata_parameters_when_refusing_an_unknown_one() -> None:
    with pytest.raises(ValidationError) as refused:
        AgentListQuery.model_validate({"metadata": "x"})
    (error,) = refused.value.errors()
    assert error["loc"] == ("metadata",)
    assert "metadata.KEY" in error["msg"]
    assert "tag" in error["msg"]


@pytest.mark.parametrize(
    "given",
    [{"tag": [""]}, {"tag": ["a\x00"]}, {"model": ""}, {"model": "m" * 201}, {"root": "maybe"}],
)
def test_bad_tags_models_and_roots_are_refused(given: dict[str, Any]) -> None:
    with pytest.raises(ValidationError):
        AgentListQuery.model_validate(given)


def test_tags_model_parent_and_root_are_read() -> None:
    parent = "3c4d5e6f-7a8b-4c9d-8e0f-1a2b3c4d5e6f"
    query = AgentListQuery.model_validate(
        {"tag": ["a", "b"], "model": "m", "parent_execution_id": parent, "root": "false"}
    )
    assert (query.tag, query.model, str(query.parent_execution_id), query.root) == (
        ["a", "b"],
        "m",
        parent,
        False,
    )


@pytest.mark.parametrize("given", [{"depth": "21"}, {"depth": "-1"}, {"limit": "0"}])
def test_a_tree_is_bounded(given: dict[str, str]) -> None:
    with pytest.raises(ValidationError):
        TreeQuery.model_validate(given)
    assert (TreeQuery().depth, TreeQuery().limit) == (5, 500)
