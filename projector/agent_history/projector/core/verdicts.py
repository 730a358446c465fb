"""A watchdog's decisions: which open runs it gives up on as of a time, and the verdict event
it publishes for each. Pure; no I/O.

A verdict is a function of the row and the limits alone: its time is the moment the limit ran
out (``since + limit``, never the clock of whoever noticed), and its id is derived from the
execution, the reason and that time. So two watchdogs, or one that crashed and came back,
write the same event, and the fold sees a duplicate.

``as_of`` is not simply the wall clock: it is the newest time up to which the read model is
known to hold every event (``fresh_as_of``). A projector that is behind, or stopped, shows
every run as silent; judging it then would time out healthy runs.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from uuid import UUID, uuid5

from agent_history.contract.events import (
    SPEC_VERSION,
    ExecutionTimedOut,
    TimedOutData,
    TimeoutReason,
)
from agent_history.contract.statuses import Status

WATCHDOG_SOURCE = "agent-history/watchdog"
# The namespace of verdict ids (uuid5 of execution id, reason and time).
VERDICT_IDS = UUID("5f0c2d1e-7a43-4c8e-9b6a-0d3e5f7a9c21")
_MS = timedelta(milliseconds=1)


@dataclass(frozen=True, slots=True)
class OpenRun:
    """What a watchdog reads of a pending or running execution."""

    id: UUID
    agent_id: UUID
    user_id: UUID
    status: Status
    execution_start: datetime
    last_seen_at: datetime | None
    timeout_ms: int | None


@dataclass(frozen=True, slots=True)
class Limits:
    # No event of a running run for this long: its worker is lost.
    lost_after: timedelta
    # Pending for this long: given up on (None: never).
    queued_timeout: timedelta | None


def verdict_on(run: OpenRun, as_of: datetime, limits: Limits) -> ExecutionTimedOut | None:
    """The verdict due on ``run`` as of ``as_of``, or None while none is.

    A limit is due once it has run out: ``as_of - since >= limit``, so the verdict's time is
    never after ``as_of``. When several are due, the one that ran out first is the verdict
    (the fold would keep that one of them anyway).
    """
    limits_of: list[tuple[TimeoutReason, datetime, timedelta]] = []
    if run.status == "running":
        # A running row always has its Started event's time; a row projected before
        # last_seen_at existed has that as its last sign of life.
        seen = run.last_seen_at or run.execution_start
        limits_of.append(("worker_lost", seen, limits.lost_after))
        if run.timeout_ms is not None:
            limits_of.append(("deadline_exceeded", run.execution_start, run.timeout_ms * _MS))
    elif run.status == "pending" and limits.queued_timeout is not None:
        limits_of.append(("queued_too_long", run.execution_start, limits.queued_timeout))
    # Each compared as a duration, so that a limit far beyond year 9999 never overflows.
    due = [
        (since + _whole_ms(limit), reason, since, limit)
        for reason, since, limit in limits_of
        if as_of - since >= _whole_ms(limit)
    ]
    if not due:
        return None
    _, reason, since, limit = min(due)
    return timed_out(run, reason, since, limit)


def timed_out(
    run: OpenRun, reason: TimeoutReason, since: datetime, limit: timedelta
) -> ExecutionTimedOut:
    """The verdict event; the same arguments always give the same event, id included."""
    limit = _whole_ms(limit)  # so that its time is exactly since + limit_ms
    # In UTC throughout: the same instants read through another offset write the same bytes.
    since = since.astimezone(UTC)
    time = since + limit
    return ExecutionTimedOut(
        specversion=SPEC_VERSION,
        id=uuid5(VERDICT_IDS, f"{run.id} {reason} {time.isoformat()}"),
        source=WATCHDOG_SOURCE,
        subject=run.id,
        time=time,
        data=TimedOutData(
            execution_id=run.id,
            agent_id=run.agent_id,
            user_id=run.user_id,
            reason=reason,
            last_seen_at=(run.last_seen_at or run.execution_start).astimezone(UTC),
            since=since,
            limit_ms=limit // _MS,
        ),
    )


def _whole_ms(limit: timedelta) -> timedelta:
    return limit // _MS * _MS


def verdicts(runs: Iterable[OpenRun], as_of: datetime, limits: Limits) -> list[ExecutionTimedOut]:
    """The verdicts due on ``runs`` as of ``as_of``."""
    return [v for run in runs if (v := verdict_on(run, as_of, limits)) is not None]


# The topic's end offsets (partition -> next offset) as read at a time.
Sample = tuple[datetime, Mapping[int, int]]


def fresh_as_of(samples: Sequence[Sample], applied: Mapping[int, int]) -> datetime | None:
    """The newest sample time whose end offsets the projection has applied in every partition
    (``applied``: its checkpoints), or None when it has applied none of the samples.

    Every record written to the topic before that time is then in the read model, so a run
    it shows as silent up to then was silent in the log too.
    """
    fresh = [
        at
        for at, ends in samples
        if all(applied.get(partition, 0) >= end for partition, end in ends.items())
    ]
    return max(fresh, default=None)
