"""The watchdog's decisions: which open runs get which verdict as of a time, exactly at the
limits, and a verdict that is the same event whoever reaches it."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta, timezone
from uuid import UUID

import pytest

from agent_history.contract.events import MAX_TIMEOUT_MS, ExecutionTimedOut, parse_event
from agent_history.projector.core.fold import fold, from_event
from agent_history.projector.core.verdicts import (
    WATCHDOG_SOURCE,
    Limits,
    OpenRun,
    fresh_as_of,
    timed_out,
    verdict_on,
    verdicts,
)

T0 = datetime(2025, 6, 1, 8, 0, tzinfo=UTC)
LIMITS = Limits(lost_after=timedelta(seconds=60), queued_timeout=timedelta(hours=1))
TICK = timedelta(microseconds=1)
RUNNING = OpenRun(
    id=UUID("7c9e6679-7425-40de-944b-e07fc1f90ae7"),
    agent_id=UUID("a0000000-0000-4000-8000-000000000001"),
    user_id=UUID("b0000000-0000-4000-8000-000000000001"),
    status="running",
    execution_start=T0,
    last_seen_at=T0 + timedelta(seconds=30),
    timeout_ms=None,
)
PENDING = replace(RUNNING, status="pending", last_seen_at=T0)


def test_a_running_run_is_lost_exactly_lost_after_its_last_sign_of_life() -> None:
    lost = T0 + timedelta(seconds=90)

    assert verdict_on(RUNNING, lost - TICK, LIMITS) is None
    at_the_limit = verdict_on(RUNNING, lost, LIMITS)
    assert at_the_limit is not None
    assert (at_the_limit.time, at_the_limit.data.reason) == (lost, "worker_lost")
    assert (at_the_limit.data.last_seen_at, at_the_limit.data.since) == (RUNNING.last_seen_at,) * 2
    assert at_the_limit.data.limit_ms == 60_000
    # Judged later, the verdict is the same event: its time is when the limit ran out.
    assert verdict_on(RUNNING, lost + timedelta(hours=5), LIMITS) == at_the_limit


def test_a_running_run_past_its_deadline_times_out_even_while_it_heartbeats() -> None:
    run = replace(RUNNING, timeout_ms=10_000)
    deadline = T0 + timedelta(seconds=10)

    assert verdict_on(replace(run, last_seen_at=deadline - TICK), deadline - TICK, LIMITS) is None
    beating = replace(run, last_seen_at=deadline)  # seen at the very moment
    verdict = verdict_on(beating, deadline, LIMITS)
    assert verdict is not None
    assert (verdict.time, verdict.data.reason) == (deadline, "deadline_exceeded")
    assert (verdict.data.since, verdict.data.limit_ms) == (T0, 10_000)
    assert verdict.data.last_seen_at == deadline


def test_a_pending_run_times_out_exactly_queued_timeout_after_it_was_queued() -> None:
    due = T0 + timedelta(hours=1)

    assert verdict_on(PENDING, due - TICK, LIMITS) is None
    verdict = verdict_on(PENDING, due, LIMITS)
    assert verdict is not None
    assert (verdict.time, verdict.data.reason, verdict.data.since) == (
        due,
        "queued_too_long",
        T0,
    )
    # Neither lost nor past a deadline: those judge running runs only.
    silent = replace(PENDING, last_seen_at=T0 - timedelta(days=1), timeout_ms=1)
    assert verdict_on(silent, due - TICK, LIMITS) is None


def test_without_a_queued_timeout_pending_runs_wait_forever() -> None:
    never = Limits(lost_after=LIMITS.lost_after, queued_timeout=None)

    assert verdict_on(PENDING, T0 + timedelta(days=3650), never) is None


@pytest.mark.parametrize("status", ["completed", "failed", "cancelled", "timed_out"])
def test_an_ended_run_gets_no_verdict(status: str) -> None:
    ended = replace(RUNNING, status=status, timeout_ms=1)  # type: ignore[arg-type]

    assert verdict_on(ended, T0 + timedelta(days=1), LIMITS) is None


@pytest.mark.parametrize(
    ("timeout_ms", "reason"),
    [
        (50_000, "deadline_exceeded"),  # ran out at 50 s, before the worker was lost at 90 s
        (90_000, "deadline_exceeded"),  # both at 90 s: the reasons' order decides
        (120_000, "worker_lost"),
    ],
)
def test_of_several_limits_the_one_that_ran_out_first_is_the_verdict(
    timeout_ms: int, reason: str
) -> None:
    run = replace(RUNNING, timeout_ms=timeout_ms)
    as_of = T0 + timedelta(hours=1)

    verdict = verdict_on(run, as_of, LIMITS)

    assert verdict is not None
    assert verdict.data.reason == reason
    assert verdict.time == T0 + min(timedelta(milliseconds=timeout_ms), timedelta(seconds=90))


def test_a_deadline_beyond_year_9999_never_overflows() -> None:
    late = replace(RUNNING, execution_start=datetime(9999, 12, 31, tzinfo=UTC))
    run = replace(late, last_seen_at=late.execution_start, timeout_ms=MAX_TIMEOUT_MS)

    assert verdict_on(run, datetime(9999, 12, 31, 0, 0, 30, tzinfo=UTC), LIMITS) is None


def test_the_same_verdict_is_the_same_event_whoever_writes_it() -> None:
    # Read back from two databases, or two watchdogs' clocks: the same instants.
    elsewhere = timezone(timedelta(hours=2))
    other = replace(RUNNING, last_seen_at=RUNNING.last_seen_at.astimezone(elsewhere))  # type: ignore[union-attr]
    late = T0 + timedelta(days=2)

    mine, theirs = verdict_on(RUNNING, late, LIMITS), verdict_on(other, late, LIMITS)

    assert mine is not None
    assert theirs is not None
    assert mine.id == theirs.id
    assert mine.model_dump_json() == theirs.model_dump_json()
    assert (mine.source, mine.subject, mine.time.tzinfo) == (WATCHDOG_SOURCE, RUNNING.id, UTC)
    assert parse_event(mine.model_dump_json()) == mine
    # Another reason, or another time, is another verdict.
    deadline = timed_out(RUNNING, "deadline_exceeded", mine.data.since, timedelta(seconds=60))
    assert deadline.id != mine.id
    later = timed_out(RUNNING, "worker_lost", mine.data.since, timedelta(seconds=61))
    assert later.id != mine.id


def test_a_limit_counts_in_whole_milliseconds() -> None:
    limits = Limits(lost_after=timedelta(seconds=60, microseconds=999), queued_timeout=None)

    verdict = verdict_on(RUNNING, T0 + timedelta(seconds=90), limits)

    assert verdict is not None
    assert verdict.time == verdict.data.since + timedelta(milliseconds=verdict.data.limit_ms)


def test_the_verdict_folds_to_a_run_timed_until_its_time() -> None:
    started = parse_event(
        '{"specversion": "1.0", "id": "0f8fad5b-d9cb-469f-a165-70867728950e", '
        '"source": "urn:w", "type": "ExecutionStarted", '
        f'"subject": "{RUNNING.id}", "time": "{T0.isoformat()}", '
        f'"data": {{"execution_id": "{RUNNING.id}", "agent_id": "{RUNNING.agent_id}", '
        f'"user_id": "{RUNNING.user_id}", "input_data": {{}}}}}}'
    )
    row = from_event(started)
    verdict = verdict_on(replace(RUNNING, last_seen_at=T0), T0 + timedelta(minutes=5), LIMITS)
    assert isinstance(verdict, ExecutionTimedOut)

    ended = fold(row, verdict)

    assert (ended.status, ended.execution_end, ended.execution_time_ms) == (
        "timed_out",
        T0 + timedelta(seconds=60),
        60_000,
    )
    assert (ended.error_message, ended.last_seen_at) == ("worker_lost", T0)


def test_verdicts_judges_each_run() -> None:
    as_of = T0 + timedelta(hours=2)
    fresh = replace(RUNNING, last_seen_at=as_of)

    assert [v.data.reason for v in verdicts([RUNNING, fresh, PENDING], as_of, LIMITS)] == [
        "worker_lost",
        "queued_too_long",
    ]


@pytest.mark.parametrize(
    ("samples", "applied", "fresh"),
    [
        # Caught up with the newest sample, or only with an older one.
        ([(1, {0: 5, 1: 3}), (2, {0: 7, 1: 3})], {0: 7, 1: 3}, 2),
        ([(1, {0: 5, 1: 3}), (2, {0: 7, 1: 3})], {0: 6, 1: 9}, 1),
        # Behind every sample: nothing is known complete.
        ([(1, {0: 5, 1: 3})], {0: 5}, None),
        ([(1, {0: 5})], {}, None),
        # Empty partitions need no checkpoint.
        ([(1, {0: 0, 1: 0})], {}, 1),
    ],
)
def test_the_table_is_complete_as_of_the_newest_sample_the_projector_has_applied(
    samples: list[tuple[int, dict[int, int]]], applied: dict[int, int], fresh: int | None
) -> None:
    timed = [(T0 + timedelta(seconds=s), ends) for s, ends in samples]

    expected = None if fresh is None else T0 + timedelta(seconds=fresh)
    assert fresh_as_of(timed, applied) == expected
