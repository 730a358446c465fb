"""The fold: each rule of the spec by example, then all of it against a reference, by property."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal
from typing import Any, get_args
from uuid import UUID, uuid4

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import JsonValue

from agent_history.contract.events import (
    Event,
    EventType,
    ExecutionCancelled,
    ExecutionCompleted,
    ExecutionFailed,
    ExecutionHeartbeat,
    ExecutionQueued,
    ExecutionStarted,
    ExecutionTimedOut,
    TimeoutReason,
    event_from_dict,
)
from agent_history.projector.core.fold import Execution, Status, fold, fold_all, from_event, merge

EXECUTION = UUID("7c9e6679-7425-40de-944b-e07fc1f90ae7")
AGENT = UUID("a0000000-0000-4000-8000-000000000001")
OTHER_AGENT = UUID("a0000000-0000-4000-8000-000000000002")
USER = UUID("b0000000-0000-4000-8000-000000000001")
OTHER_USER = UUID("b0000000-0000-4000-8000-000000000002")
LOW_ID = UUID("00000000-0000-4000-8000-000000000001")
HIGH_ID = UUID("ffffffff-ffff-4fff-bfff-ffffffffffff")
T0 = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)
MS = 1000  # microseconds

QUEUED: EventType = "ExecutionQueued"
STARTED: EventType = "ExecutionStarted"
COMPLETED: EventType = "ExecutionCompleted"
FAILED: EventType = "ExecutionFailed"
CANCELLED: EventType = "ExecutionCancelled"
HEARTBEAT: EventType = "ExecutionHeartbeat"
TIMED_OUT: EventType = "ExecutionTimedOut"
KINDS: tuple[EventType, ...] = (QUEUED, STARTED, COMPLETED, FAILED, CANCELLED, HEARTBEAT, TIMED_OUT)
REAL_ENDS: tuple[EventType, ...] = (COMPLETED, FAILED, CANCELLED)
_REQUIRED: dict[EventType, dict[str, JsonValue]] = {
    QUEUED: {"input_data": {}},
    STARTED: {"input_data": {}},
    FAILED: {"error_message": "failed"},
    TIMED_OUT: {
        "reason": "worker_lost",
        "last_seen_at": T0.isoformat(),
        "since": T0.isoformat(),
        "limit_ms": 0,
    },
}


def at(us: int) -> datetime:
    """T0 plus ``us`` microseconds."""
    return T0 + timedelta(microseconds=us)


def make(
    kind: EventType,
    us: int = 0,
    *,
    event_id: UUID | None = None,
    agent_id: UUID = AGENT,
    user_id: UUID = USER,
    execution_id: UUID = EXECUTION,
    **data: JsonValue,
) -> Event:
    """An event of ``kind`` for the execution, at T0 + ``us`` microseconds."""
    ids = {"execution_id": str(execution_id), "agent_id": str(agent_id), "user_id": str(user_id)}
    return event_from_dict(
        {
            "specversion": "1.0",
            "id": str(event_id or uuid4()),
            "source": "tests/unit/projector",
            "subject": str(execution_id),
            "time": at(us).isoformat(),
            "type": kind,
            "data": {**_REQUIRED.get(kind, {}), **data, **ids},
        }
    )


def fold_in_order(events: Sequence[Event]) -> Execution:
    row: Execution | None = None
    for event in events:
        row = fold(row, event)
    assert row is not None, "no events folded"
    return row


@dataclass(frozen=True)
class Row:
    """What a reader of agent_executions sees of one execution."""

    agent_id: UUID
    user_id: UUID
    status: Status
    execution_start: datetime
    execution_end: datetime | None
    execution_time_ms: int | None
    input_data: dict[str, JsonValue] | None
    output_data: JsonValue
    error_message: str | None
    timeout_ms: int | None
    last_seen_at: datetime | None
    model: str | None = None
    tags: list[str] | None = None
    metadata: dict[str, Any] | None = None
    parent_execution_id: UUID | None = None
    trace_id: str | None = None
    input_tokens: int | None = None
    output_tokens: int | None = None
    cost: Decimal | None = None
    cost_currency: str | None = None


def row_of(execution: Execution) -> Row:
    return Row(
        agent_id=execution.agent_id,
        user_id=execution.user_id,
        status=execution.status,
        execution_start=execution.execution_start,
        execution_end=execution.execution_end,
        execution_time_ms=execution.execution_time_ms,
        input_data=execution.input_data,
        output_data=execution.output_data,
        error_message=execution.error_message,
        timeout_ms=execution.timeout_ms,
        last_seen_at=execution.last_seen_at,
        model=execution.model,
        tags=execution.tags,
        metadata=execution.metadata,
        parent_execution_id=execution.parent_execution_id,
        trace_id=execution.trace_id,
        input_tokens=execution.input_tokens,
        output_tokens=execution.output_tokens,
        cost=execution.cost,
        cost_currency=execution.cost_currency,
    )


# --- Examples, one rule at a time ---------------------------------------------------------


def test_queued_started_completed() -> None:
    queued = make(QUEUED, 0, input_data={"prompt": "queued"})
    started = make(STARTED, 2 * MS, input_data={"prompt": "started"})
    completed = make(COMPLETED, 1502 * MS, output_data={"answer": 42})

    row = fold_in_order([queued, started, completed])

    assert row_of(row) == Row(
        agent_id=AGENT,
        user_id=USER,
        status="completed",
        execution_start=at(2 * MS),
        execution_end=at(1502 * MS),
        execution_time_ms=1500,
        input_data={"prompt": "started"},
        output_data={"answer": 42},
        error_message=None,
        timeout_ms=None,
        last_seen_at=at(1502 * MS),
    )
    assert row.id == EXECUTION


@pytest.mark.parametrize(
    ("kinds", "status"),
    [
        ([QUEUED], "pending"),
        ([STARTED], "running"),
        ([QUEUED, STARTED], "running"),
        ([QUEUED, STARTED, COMPLETED], "completed"),
        ([STARTED, FAILED], "failed"),
        ([QUEUED, CANCELLED], "cancelled"),
        ([COMPLETED], "completed"),
        # Never backwards: pending < running < the terminal status.
        ([STARTED, QUEUED], "running"),
        ([COMPLETED, STARTED], "completed"),
        ([FAILED, QUEUED], "failed"),
        ([CANCELLED, STARTED, QUEUED], "cancelled"),
    ],
)
def test_status_follows_the_events_and_never_moves_backwards(
    kinds: list[EventType], status: Status
) -> None:
    # Folded in the order given, each event later than the one before.
    events = [make(kind, i * MS) for i, kind in enumerate(kinds)]

    assert fold_in_order(events).status == status


def test_failed_carries_its_error_message_and_output() -> None:
    started = make(STARTED, 0)
    failed = make(FAILED, 30 * MS, error_message="ValueError: boom", output_data=[1, 2])

    row = fold_in_order([started, failed])

    assert (row.status, row.error_message, row.output_data) == (
        "failed",
        "ValueError: boom",
        [1, 2],
    )
    assert (row.execution_end, row.execution_time_ms) == (at(30 * MS), 30)


@pytest.mark.parametrize("reason", ["user pressed stop", None])
def test_cancelled_reason_is_the_error_message(reason: str | None) -> None:
    row = fold_in_order([make(STARTED, 0), make(CANCELLED, 5 * MS, reason=reason)])

    assert (row.status, row.error_message, row.output_data) == ("cancelled", reason, None)
    assert (row.execution_end, row.execution_time_ms) == (at(5 * MS), 5)


def test_completed_has_no_error_message() -> None:
    row = fold_in_order([make(STARTED, 0), make(COMPLETED, MS, output_data="done")])

    assert (row.status, row.error_message, row.output_data) == ("completed", None, "done")


def test_terminal_before_started_keeps_its_status_and_is_timed_once_started_arrives() -> None:
    started = make(STARTED, 10 * MS, input_data={"prompt": "p"})
    completed = make(COMPLETED, 25 * MS, output_data="done")

    early = fold(None, completed)
    assert (early.status, early.execution_start, early.execution_end) == (
        "completed",
        at(25 * MS),
        at(25 * MS),
    )
    assert early.execution_time_ms is None, "no Started yet: no execution time"

    late = fold(early, started)
    assert row_of(late) == Row(
        agent_id=AGENT,
        user_id=USER,
        status="completed",
        execution_start=at(10 * MS),
        execution_end=at(25 * MS),
        execution_time_ms=15,
        input_data={"prompt": "p"},
        output_data="done",
        error_message=None,
        timeout_ms=None,
        last_seen_at=at(25 * MS),
    )


@pytest.mark.parametrize(
    ("first", "second", "winner"),
    [
        # The earliest time wins, whatever the ids.
        ((COMPLETED, 10 * MS, LOW_ID), (FAILED, 5 * MS, HIGH_ID), 1),
        ((CANCELLED, 7 * MS, HIGH_ID), (COMPLETED, 8 * MS, LOW_ID), 0),
        # Equal times: the smaller event id wins.
        ((COMPLETED, 5 * MS, LOW_ID), (FAILED, 5 * MS, HIGH_ID), 0),
        ((FAILED, 5 * MS, HIGH_ID), (CANCELLED, 5 * MS, LOW_ID), 1),
        (
            (COMPLETED, 5 * MS, UUID("12345678-0000-4000-8000-000000000002")),
            (COMPLETED, 5 * MS, UUID("12345678-0000-4000-8000-000000000001")),
            1,
        ),
    ],
)
def test_between_conflicting_terminals_the_earliest_wins(
    first: tuple[EventType, int, UUID], second: tuple[EventType, int, UUID], winner: int
) -> None:
    started = make(STARTED, 0)
    terminals = [
        make(kind, us, event_id=event_id, output_data=str(event_id), reason=str(event_id))
        for kind, us, event_id in (first, second)
    ]
    won = from_event(terminals[winner])

    for order in ([started, *terminals], [*reversed(terminals), started]):
        row = fold_in_order(order)
        assert (row.status, row.execution_end, row.terminal_event_id) == (
            won.status,
            won.execution_end,
            terminals[winner].id,
        )
        assert (row.output_data, row.error_message) == (won.output_data, won.error_message)
        assert row.execution_time_ms == (first, second)[winner][1] // MS


@pytest.mark.parametrize(
    ("end_us", "expected_ms"),
    [
        (0, 0),
        (999, 0),
        (1000, 1),
        (1999, 1),  # 1.999 ms: truncated, not rounded
        (2000, 2),
        (86_400_000_000 + 1999, 86_400_001),
        # A terminal event stamped before the start (clock skew): never negative.
        (-1, 0),
        (-5000, 0),
    ],
)
def test_execution_time_is_whole_milliseconds_truncated_never_negative(
    end_us: int, expected_ms: int
) -> None:
    row = fold_in_order([make(STARTED, 0), make(COMPLETED, end_us)])

    assert row.execution_time_ms == expected_ms


@pytest.mark.parametrize(
    ("events", "start"),
    [
        ([(QUEUED, 5 * MS), (COMPLETED, 3 * MS)], 3 * MS),
        ([(COMPLETED, 3 * MS), (QUEUED, 5 * MS)], 3 * MS),
        ([(FAILED, 8 * MS)], 8 * MS),
        ([(QUEUED, 4 * MS), (QUEUED, 2 * MS)], 2 * MS),
        ([(CANCELLED, 9 * MS), (COMPLETED, 7 * MS), (QUEUED, 8 * MS)], 7 * MS),
    ],
)
def test_without_started_start_is_the_earliest_event_and_there_is_no_execution_time(
    events: list[tuple[EventType, int]], start: int
) -> None:
    row = fold_in_order([make(kind, us) for kind, us in events])

    assert row.execution_start == at(start)
    assert row.execution_time_ms is None


def test_started_time_is_the_start_even_when_other_events_are_earlier() -> None:
    row = fold_in_order([make(QUEUED, 0), make(COMPLETED, 20 * MS), make(STARTED, 4 * MS)])

    assert (row.execution_start, row.execution_time_ms) == (at(4 * MS), 16)


def test_of_several_started_the_earliest_gives_start_and_input() -> None:
    late = make(STARTED, 8 * MS, input_data={"from": "late"})
    early = make(STARTED, 3 * MS, input_data={"from": "early"})
    tied = make(STARTED, 3 * MS, event_id=HIGH_ID, input_data={"from": "tied, larger id"})

    for order in ([late, early, tied], [tied, late, early], [early, tied, late]):
        row = fold_in_order(order)
        assert row.execution_start == at(3 * MS)
        assert row.input_data == {"from": "early"}


@pytest.mark.parametrize(
    ("events", "winner"),
    [
        # Started beats Queued, even a Queued event that is earlier.
        ([(QUEUED, 0, None), (STARTED, 5 * MS, None)], 1),
        ([(STARTED, 5 * MS, None), (QUEUED, 0, None)], 0),
        ([(QUEUED, 0, None), (STARTED, 9 * MS, None), (QUEUED, 1 * MS, None)], 1),
        # No Started: the earliest Queued, by time and then by id.
        ([(QUEUED, 6 * MS, None), (QUEUED, 2 * MS, None)], 1),
        ([(QUEUED, 2 * MS, HIGH_ID), (QUEUED, 2 * MS, LOW_ID)], 1),
        ([(QUEUED, 2 * MS, LOW_ID), (QUEUED, 2 * MS, HIGH_ID), (COMPLETED, MS, None)], 0),
        # Only terminals: no input.
        ([(COMPLETED, MS, None)], None),
    ],
)
def test_input_data_comes_from_started_else_the_earliest_queued(
    events: list[tuple[EventType, int, UUID | None]], winner: int | None
) -> None:
    made = [
        make(kind, us, event_id=event_id, input_data={"index": i})
        for i, (kind, us, event_id) in enumerate(events)
    ]

    assert fold_in_order(made).input_data == (None if winner is None else {"index": winner})


@pytest.mark.parametrize(
    ("events", "ids"),
    [
        # From the input event that wins ...
        ([(QUEUED, 0, OTHER_AGENT, USER), (COMPLETED, MS, AGENT, OTHER_USER)], 0),
        ([(COMPLETED, 0, AGENT, USER), (QUEUED, MS, OTHER_AGENT, OTHER_USER)], 1),
        ([(QUEUED, 0, OTHER_AGENT, OTHER_USER), (STARTED, MS, AGENT, USER)], 1),
        ([(STARTED, 5 * MS, AGENT, USER), (STARTED, MS, OTHER_AGENT, OTHER_USER)], 1),
        # ... else from the winning terminal event.
        ([(COMPLETED, 5 * MS, AGENT, USER), (FAILED, 3 * MS, OTHER_AGENT, OTHER_USER)], 1),
        ([(CANCELLED, 3 * MS, OTHER_AGENT, USER), (FAILED, 4 * MS, AGENT, OTHER_USER)], 0),
    ],
)
def test_agent_and_user_come_from_the_winning_input_else_the_winning_terminal(
    events: list[tuple[EventType, int, UUID, UUID]], ids: int
) -> None:
    made = [make(kind, us, agent_id=a, user_id=u) for kind, us, a, u in events]

    for order in (made, made[::-1]):
        row = fold_in_order(order)
        assert (row.agent_id, row.user_id) == (events[ids][2], events[ids][3])


def test_folding_an_event_twice_changes_nothing() -> None:
    started, failed = make(STARTED, 0), make(FAILED, 3 * MS, error_message="boom")
    row = fold_in_order([started, failed])

    assert fold(row, started) == row
    assert fold(row, failed) == row
    assert fold(fold(None, started), started) == from_event(started)


def test_fold_all_keeps_one_row_per_execution() -> None:
    other = UUID("7c9e6679-7425-40de-944b-e07fc1f90ae8")
    events = [
        make(STARTED, 0),
        make(QUEUED, 0, execution_id=other),
        make(COMPLETED, 2 * MS),
    ]

    rows = fold_all(events)

    assert {key: row.status for key, row in rows.items()} == {
        EXECUTION: "completed",
        other: "pending",
    }
    assert all(key == row.id for key, row in rows.items())


def test_rows_of_different_executions_do_not_merge() -> None:
    mine = from_event(make(STARTED, 0))
    theirs = from_event(make(STARTED, 0, execution_id=uuid4()))

    with pytest.raises(ValueError, match="different executions"):
        merge(mine, theirs)


# --- Heartbeats, deadlines and verdicts ----------------------------------------------------

SECOND = 1_000_000  # microseconds


def verdict(
    us: int,
    reason: str = "worker_lost",
    *,
    last_seen_us: int = 0,
    event_id: UUID | None = None,
    **ids: JsonValue,
) -> Event:
    """A watchdog's verdict at T0 + ``us``, for a run last seen at T0 + ``last_seen_us``."""
    return make(
        TIMED_OUT,
        us,
        event_id=event_id,
        reason=reason,
        last_seen_at=at(last_seen_us).isoformat(),
        since=at(last_seen_us).isoformat(),
        limit_ms=(us - last_seen_us) // MS,
        **ids,  # type: ignore[arg-type]
    )


def test_a_heartbeat_changes_nothing_but_last_seen_at() -> None:
    for opened in ([make(STARTED, 0)], [make(QUEUED, 0)], [make(QUEUED, 0), make(STARTED, MS)]):
        without = fold_in_order(opened)
        assert without.last_seen_at is not None
        # Earlier than the run's events too (a skewed clock): still only last_seen_at.
        for beat_us in (5 * SECOND, -SECOND):
            beat = make(HEARTBEAT, beat_us, agent_id=OTHER_AGENT, user_id=OTHER_USER)
            seen = max(without.last_seen_at, at(beat_us))

            for order in ([*opened, beat], [beat, *opened]):
                assert row_of(fold_in_order(order)) == replace(row_of(without), last_seen_at=seen)


def test_heartbeats_alone_make_a_pending_row_from_the_earliest() -> None:
    first = make(HEARTBEAT, 2 * SECOND, agent_id=OTHER_AGENT, user_id=OTHER_USER)
    later = make(HEARTBEAT, 3 * SECOND)

    for order in ([first, later], [later, first]):
        row = fold_in_order(order)
        assert (row.status, row.execution_start, row.last_seen_at) == (
            "pending",
            at(2 * SECOND),
            at(3 * SECOND),
        )
        assert (row.agent_id, row.user_id) == (OTHER_AGENT, OTHER_USER)
        assert (row.input_data, row.execution_end, row.execution_time_ms) == (None, None, None)


def test_a_timed_out_run_is_timed_until_the_verdict_which_is_no_sign_of_life() -> None:
    started = make(STARTED, 0, input_data={"prompt": "p"}, timeout_ms=30_000)
    beat = make(HEARTBEAT, 1 * SECOND)
    lost = verdict(61 * SECOND, last_seen_us=1 * SECOND)

    row = fold_in_order([started, beat, lost])

    assert row_of(row) == Row(
        agent_id=AGENT,
        user_id=USER,
        status="timed_out",
        execution_start=at(0),
        execution_end=at(61 * SECOND),
        execution_time_ms=61_000,
        input_data={"prompt": "p"},
        output_data=None,
        error_message="worker_lost",
        timeout_ms=30_000,
        last_seen_at=at(1 * SECOND),
    )


def test_a_verdict_alone_makes_a_timed_out_row_never_seen() -> None:
    row = fold_in_order([verdict(5 * SECOND, "queued_too_long")])

    assert (row.status, row.execution_start, row.execution_end) == (
        "timed_out",
        at(5 * SECOND),
        at(5 * SECOND),
    )
    assert (row.last_seen_at, row.execution_time_ms, row.error_message) == (
        None,
        None,
        "queued_too_long",
    )


@pytest.mark.parametrize("end", REAL_ENDS)
@pytest.mark.parametrize("end_us", [30 * SECOND, 90 * SECOND])
def test_a_real_end_wins_over_a_verdict_whenever_either_arrives(
    end: EventType, end_us: int
) -> None:
    started = make(STARTED, 0)
    lost = verdict(60 * SECOND, event_id=LOW_ID)
    real = make(end, end_us, event_id=HIGH_ID)

    for order in ([started, lost, real], [started, real, lost], [real, lost, started]):
        row = fold_in_order(order)
        assert (row.status, row.execution_end, row.terminal_event_id) == (
            from_event(real).status,
            at(end_us),
            HIGH_ID,
        )
        assert row.execution_time_ms == end_us // MS
        assert row.last_seen_at == at(end_us)


@pytest.mark.parametrize(
    ("first", "second", "winner"),
    [
        ((60 * SECOND, HIGH_ID, "worker_lost"), (30 * SECOND, LOW_ID, "deadline_exceeded"), 1),
        ((60 * SECOND, LOW_ID, "worker_lost"), (60 * SECOND, HIGH_ID, "deadline_exceeded"), 0),
    ],
)
def test_between_verdicts_the_earliest_wins(
    first: tuple[int, UUID, str], second: tuple[int, UUID, str], winner: int
) -> None:
    verdicts = [verdict(us, reason, event_id=event_id) for us, event_id, reason in (first, second)]

    for order in ([make(STARTED, 0), *verdicts], [*reversed(verdicts), make(STARTED, 0)]):
        row = fold_in_order(order)
        assert (row.execution_end, row.error_message) == (
            at((first, second)[winner][0]),
            (first, second)[winner][2],
        )


def test_timeout_ms_comes_from_the_input_winner() -> None:
    queued = make(QUEUED, 0, timeout_ms=5_000)
    started = make(STARTED, MS)
    timed = make(STARTED, 2 * MS, timeout_ms=9_000)

    assert fold_in_order([queued]).timeout_ms == 5_000
    assert fold_in_order([queued, started]).timeout_ms is None
    assert fold_in_order([timed, queued]).timeout_ms == 9_000
    assert fold_in_order([timed, started, queued]).timeout_ms is None


def test_model_tags_metadata_and_parent_come_from_the_input_winner() -> None:
    parent = uuid4()
    queued = make(QUEUED, 0, model="small", tags=["q"], metadata={"env": "dev"})
    started = make(
        STARTED,
        MS,
        model="large",
        tags=["a", "b"],
        metadata={"env": "prod", "attempt": 2, "ok": True},
        parent_execution_id=str(parent),
    )
    row = fold_in_order([started, queued])
    assert (row.model, row.tags, row.metadata, row.parent_execution_id) == (
        "large",
        ["a", "b"],
        {"env": "prod", "attempt": 2, "ok": True},
        parent,
    )
    assert fold_in_order([queued]).model == "small"


def test_trace_id_comes_from_the_input_winner_and_never_from_other_events() -> None:
    def traced(kind: EventType, us: int, trace_id: str) -> Event:
        event = make(kind, us)
        return event.model_copy(update={"traceparent": f"00-{trace_id}-00f067aa0ba902b7-01"})

    queued = traced(QUEUED, 0, "a" * 32)
    started = traced(STARTED, MS, "b" * 32)
    beat, done = traced(HEARTBEAT, 2 * MS, "c" * 32), traced(COMPLETED, 3 * MS, "d" * 32)

    assert fold_in_order([done, beat, started, queued]).trace_id == "b" * 32
    assert fold_in_order([queued, beat]).trace_id == "a" * 32
    assert fold_in_order([beat, done]).trace_id is None
    assert fold_in_order([make(STARTED, 0), queued]).trace_id is None


def test_usage_comes_from_the_terminal_winner_and_a_real_end_beats_a_verdict() -> None:
    usage: JsonValue = {"input_tokens": 120, "output_tokens": 30, "cost": {"amount": "0.0042"}}
    verdict_usage: JsonValue = {"input_tokens": 1, "cost": {"amount": "9", "currency": "EUR"}}
    completed = make(COMPLETED, 90 * MS, usage=usage)
    timed_out = make(TIMED_OUT, 60 * MS, usage=verdict_usage)
    for events in ([completed, timed_out], [timed_out, completed]):
        row = fold_in_order([make(STARTED, 0), *events])
        assert (row.input_tokens, row.output_tokens, row.cost, row.cost_currency) == (
            120,
            30,
            Decimal("0.0042"),
            "USD",
        )
    assert fold_in_order([make(STARTED, 0), make(COMPLETED, MS)]).cost is None


# --- Properties -----------------------------------------------------------------------------

_TERMINAL_STATUS: dict[str, Status] = {
    COMPLETED: "completed",
    FAILED: "failed",
    CANCELLED: "cancelled",
    TIMED_OUT: "timed_out",
}


def _by_time_then_id(event: Event) -> tuple[datetime, UUID]:
    return (event.time, event.id)


def reference(events: Sequence[Event]) -> Row:
    """The spec read literally: each winner is picked with min() over the events themselves."""
    started = [e for e in events if isinstance(e, ExecutionStarted)]
    queued = [e for e in events if isinstance(e, ExecutionQueued)]
    beats = [e for e in events if isinstance(e, ExecutionHeartbeat)]
    real_ends = [
        e
        for e in events
        if isinstance(e, ExecutionCompleted | ExecutionFailed | ExecutionCancelled)
    ]
    verdicts = [e for e in events if isinstance(e, ExecutionTimedOut)]
    inputs: list[ExecutionStarted | ExecutionQueued] = [*started] if started else [*queued]
    source = min(inputs, key=_by_time_then_id, default=None)
    # A real end wins over any verdict; among each, the earliest.
    terminal = min(real_ends or verdicts, key=_by_time_then_id, default=None)

    if terminal is not None:
        status = _TERMINAL_STATUS[terminal.type]
    else:
        status = "running" if started else "pending"
    # Heartbeats give the start only when nothing else is seen.
    not_beats = [e for e in events if not isinstance(e, ExecutionHeartbeat)]
    start = min(e.time for e in (started or not_beats or beats))
    end = terminal.time if terminal is not None else None
    elapsed = None
    if started and end is not None:
        delta = end - start
        micros = (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds
        elapsed = max(micros, 0) // 1000
    seen = [e.time for e in events if not isinstance(e, ExecutionTimedOut)]

    output: JsonValue = None
    error: str | None = None
    match terminal:
        case ExecutionCompleted():
            output = terminal.data.output_data
        case ExecutionFailed():
            output, error = terminal.data.output_data, terminal.data.error_message
        case ExecutionCancelled():
            error = terminal.data.reason
        case ExecutionTimedOut():
            error = terminal.data.reason
    usage = terminal.data.usage if terminal is not None else None
    cost = usage.cost if usage is not None else None
    ids_from: Event | None = source if source is not None else terminal
    if ids_from is None:  # heartbeats alone: the smallest by time, agent id, user id
        ids_from = min(beats, key=lambda e: (e.time, e.data.agent_id, e.data.user_id))
    return Row(
        agent_id=ids_from.data.agent_id,
        user_id=ids_from.data.user_id,
        status=status,
        execution_start=start,
        execution_end=end,
        execution_time_ms=elapsed,
        input_data=source.data.input_data if source is not None else None,
        output_data=output,
        error_message=error,
        timeout_ms=source.data.timeout_ms if source is not None else None,
        last_seen_at=max(seen, default=None),
        model=source.data.model if source is not None else None,
        tags=source.data.tags if source is not None else None,
        metadata=source.data.metadata if source is not None else None,
        parent_execution_id=source.data.parent_execution_id if source is not None else None,
        trace_id=source.traceparent[3:35] if source and source.traceparent else None,
        input_tokens=usage.input_tokens if usage is not None else None,
        output_tokens=usage.output_tokens if usage is not None else None,
        cost=cost.amount if cost is not None else None,
        cost_currency=cost.currency if cost is not None else None,
    )


# Few instants 0.7 ms apart, so ties between events are common and truncation matters; some
# written in another UTC offset, which is the same instant.
_ZONES = (UTC, timezone(timedelta(hours=2)), timezone(timedelta(hours=-5, minutes=-30)))


def _drawn_event(
    kind: EventType,
    step: int,
    zone: timezone,
    event_id: UUID,
    agent_id: UUID,
    user_id: UUID,
    with_reason: bool,
    timeout_ms: int | None,
    reason: str,
    details: bool,
) -> Event:
    # Every part an event can contribute names its event, so the test sees which one won.
    tag = str(event_id)
    data: dict[str, Any] = {
        "execution_id": str(EXECUTION),
        "agent_id": str(agent_id),
        "user_id": str(user_id),
    }
    if kind in (QUEUED, STARTED):
        data["input_data"] = {"from": tag}
        if timeout_ms is not None:
            data["timeout_ms"] = timeout_ms
        if details:  # what a run carries, named after its event
            data.update(
                model=f"model of {tag}",
                tags=[tag, "shared"],
                metadata={"from": tag, "n": step, "ok": True},
                parent_execution_id=tag,
            )
    if kind in (COMPLETED, FAILED, CANCELLED, TIMED_OUT) and details:
        data["usage"] = {
            "input_tokens": step,
            "output_tokens": event_id.int % 1000,
            "cost": {"amount": f"0.{event_id.int % 10**9:09d}", "currency": "EUR"},
        }
    if kind == TIMED_OUT:
        seen = at(700 * (step - 2)).isoformat()
        data.update(reason=reason, last_seen_at=seen, since=seen, limit_ms=1)
    if kind in (COMPLETED, FAILED):
        data["output_data"] = {"from": tag}
    if kind == FAILED:
        data["error_message"] = f"error of {tag}"
    if kind == CANCELLED and with_reason:
        data["reason"] = f"reason of {tag}"
    envelope = {
        "specversion": "1.0",
        "id": tag,
        "source": "hypothesis",
        "subject": str(EXECUTION),
        "time": at(700 * step).astimezone(zone).isoformat(),
        "type": kind,
        "data": data,
    }
    if details:  # every event of a traced run carries the run span's context
        envelope["traceparent"] = f"00-{event_id.hex}-{event_id.hex[:16]}-01"
    return event_from_dict(envelope)


def _events_of(kinds: Sequence[EventType]) -> st.SearchStrategy[list[Event]]:
    return st.lists(
        st.builds(
            _drawn_event,
            kind=st.sampled_from(kinds),
            step=st.integers(0, 6),
            zone=st.sampled_from(_ZONES),
            event_id=st.uuids(),
            agent_id=st.sampled_from((AGENT, OTHER_AGENT)),
            user_id=st.sampled_from((USER, OTHER_USER)),
            with_reason=st.booleans(),
            timeout_ms=st.none() | st.integers(1, 10**9),
            reason=st.sampled_from(get_args(TimeoutReason)),
            details=st.booleans(),
        ),
        min_size=1,
        max_size=8,
        unique_by=lambda event: event.id,
    )


# Histories of every kind, and of a few kinds only (heartbeats alone, verdicts against real
# ends, ...), which a draw over all seven kinds rarely makes.
EVENTS = _events_of(KINDS) | st.lists(
    st.sampled_from(KINDS), min_size=1, max_size=3, unique=True
).flatmap(_events_of)
PROPERTY = settings(max_examples=250, deadline=None)


@PROPERTY
@given(events=EVENTS)
def test_the_fold_agrees_with_the_reference(events: list[Event]) -> None:
    row = fold_in_order(events)

    assert row.id == EXECUTION
    assert row_of(row) == reference(events)


@PROPERTY
@given(events=EVENTS, data=st.data())
def test_any_order_with_any_duplicates_gives_the_same_row(
    events: list[Event], data: st.DataObject
) -> None:
    duplicates = data.draw(st.lists(st.sampled_from(events), max_size=6), label="duplicates")
    delivered = data.draw(st.permutations([*events, *duplicates]), label="delivered")

    assert fold_in_order(delivered) == fold_in_order(events)
    assert fold_all(delivered) == {EXECUTION: fold_in_order(events)}
    assert row_of(fold_in_order(delivered)) == reference(events)


@PROPERTY
@given(events=EVENTS, data=st.data())
def test_merge_is_commutative_associative_and_idempotent(
    events: list[Event], data: st.DataObject
) -> None:
    a, b, c = (from_event(data.draw(st.sampled_from(events))) for _ in range(3))

    assert merge(a, b) == merge(b, a)
    assert merge(merge(a, b), c) == merge(a, merge(b, c))
    assert merge(a, a) == a
    assert merge(merge(a, b), b) == merge(a, b)


@PROPERTY
@given(events=EVENTS, data=st.data())
def test_merging_partial_rows_equals_folding_everything(
    events: list[Event], data: st.DataObject
) -> None:
    # What the projector does: fold a batch in memory, then merge it into the stored row.
    cut = data.draw(st.integers(1, len(events)), label="cut")
    stored, batch = events[:cut], events[cut:] or events[:1]

    assert merge(fold_in_order(stored), fold_in_order(batch)) == fold_in_order(events)
