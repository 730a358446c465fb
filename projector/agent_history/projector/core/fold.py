"""The fold: what an execution's row is, given the events seen for it. Pure; no I/O.

``fold(row, event) == merge(row, from_event(event))``. ``merge`` picks each part of the row
from the event that wins it, by a total order on events, so it is associative, commutative
and idempotent: duplicates and reordering cannot change the result. The projector folds a
batch per execution in memory and then applies ``merge`` to the stored row in one SQL
statement (projector/merge.py), which implements exactly this module.

The parts and who wins them:
- start: ``execution_start`` is the earliest Started time; before any Started is seen, the
  earliest time of any event but heartbeats; of heartbeats only when nothing else is seen.
- input: ``input_data``, ``timeout_ms``, ``model``, ``tags``, ``metadata``,
  ``parent_execution_id``, ``trace_id`` (and agent/user ids) from the earliest Started event,
  else the earliest Queued one (earliest by time, then by event id).
- terminal: a real end (Completed, Failed, Cancelled) beats a watchdog's verdict (TimedOut),
  whenever either arrives; between real ends, and between verdicts, the earliest (by time,
  then id) wins. The winner gives status, ``execution_end``, ``output_data``,
  ``error_message`` (a verdict's reason) and the usage (tokens and cost).
- ``last_seen_at``: the newest time of the execution's events but verdicts (a verdict is the
  watchdog's conclusion, not a sign of life); None when only verdicts are seen.
- status never moves backwards: pending < running < the terminal status.
- A heartbeat changes nothing but ``last_seen_at``, except in a row of heartbeats alone: then
  it also gives ``execution_start`` and the ids (the smallest by time, agent id, user id).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import TypeAlias
from uuid import UUID

from pydantic import JsonValue

from agent_history.contract.events import (
    ExecutionCancelled,
    ExecutionCompleted,
    ExecutionFailed,
    ExecutionHeartbeat,
    ExecutionQueued,
    ExecutionStarted,
    ExecutionTimedOut,
    MetadataValue,
    TerminalEvent,
    trace_id_of,
)
from agent_history.contract.statuses import STATUSES, TERMINAL_STATUSES, Status
from agent_history.projector.core import wire
from agent_history.projector.core.decode import AnyEvent

# Input sources, best first: a Started event's input beats a Queued event's.
INPUT_FROM_STARTED = 0
INPUT_FROM_QUEUED = 1
# The status of a watchdog's verdict: any real end wins the terminal part from it.
VERDICT_STATUS: Status = "timed_out"
# Where execution_start comes from, best first: a Started event; any event but heartbeats
# (a row that has an input or a terminal part); heartbeats only.
START_FROM_STARTED = 0
START_FROM_ANY = 1
START_FROM_HEARTBEATS = 2

_MS = timedelta(milliseconds=1)

__all__ = ["STATUSES", "TERMINAL_STATUSES", "Execution", "Status", "fold", "fold_all", "merge"]


@dataclass(slots=True)
class Execution:
    """One row of ``agent_executions``, plus the keys of the events that won its parts.

    A value: nothing changes a row once it is built (fold and merge build new ones). It is
    not a frozen dataclass only because those set each field through object.__setattr__,
    which makes building a row markedly slower, on a path taken for every event. For the
    same reason this module passes the fields by position, each named in a comment (a test
    holds the comments to the fields' order): CPython 3.11 compiles a call whose positional
    arguments plus twice its keywords pass 30 (so more than 15 keywords) into building a
    dict of them and unpacking it, which made each row cost three times as much
    (docs/benchmarks.md, fourteenth round).
    """

    id: UUID
    agent_id: UUID
    user_id: UUID
    status: Status
    execution_start: datetime
    execution_end: datetime | None
    input_data: dict[str, JsonValue] | None
    output_data: JsonValue
    error_message: str | None
    # The maximum run time the input winner asked for, counted from the Started time.
    timeout_ms: int | None
    # The newest time of any event but verdicts; None while only verdicts are seen.
    last_seen_at: datetime | None
    # From the input winner, as its event gave them (None when it gave none).
    model: str | None
    tags: list[str] | None
    metadata: dict[str, MetadataValue] | None
    parent_execution_id: UUID | None
    # The trace id of the input winner's traceparent (the run's span), to find its trace.
    trace_id: str | None
    # From the terminal winner's usage.
    input_tokens: int | None
    output_tokens: int | None
    cost: Decimal | None
    cost_currency: str | None
    # Which event won the input (source rank, time, event id); None when only terminals seen.
    input_rank: int | None
    input_time: datetime | None
    input_event_id: UUID | None
    # Which terminal event won (its time is execution_end); None while the run is open.
    terminal_event_id: UUID | None

    @property
    def started(self) -> bool:
        """A Started event has been folded, so ``execution_start`` is its time."""
        return self.input_rank == INPUT_FROM_STARTED

    @property
    def start_rank(self) -> int:
        """Where ``execution_start`` comes from (START_FROM_*)."""
        return _start_rank(self)

    @property
    def execution_time_ms(self) -> int | None:
        if not self.started or self.execution_end is None:
            return None
        return max(0, (self.execution_end - self.execution_start) // _MS)


def from_event(event: AnyEvent) -> Execution:
    """The row that this event alone describes: a contract event or its mirror (wire.py)."""
    # Each case builds the row once: this runs for every event the projector reads. The
    # mirrors come first: they are what the hot path decodes.
    data = event.data
    match event:
        case (
            wire.ExecutionQueued()
            | wire.ExecutionStarted()
            | ExecutionQueued()
            | ExecutionStarted()
        ):
            started = isinstance(event, (wire.ExecutionStarted, ExecutionStarted))
            request = event.data
            # By position, not by keyword: see Execution.
            return Execution(
                data.execution_id,  # id
                data.agent_id,  # agent_id
                data.user_id,  # user_id
                "running" if started else "pending",  # status
                event.time,  # execution_start
                None,  # execution_end
                request.input_data,  # input_data
                None,  # output_data
                None,  # error_message
                request.timeout_ms,  # timeout_ms
                event.time,  # last_seen_at
                request.model,  # model
                request.tags,  # tags
                request.metadata,  # metadata
                request.parent_execution_id,  # parent_execution_id
                trace_id_of(event.traceparent),  # trace_id
                None,  # input_tokens
                None,  # output_tokens
                None,  # cost
                None,  # cost_currency
                INPUT_FROM_STARTED if started else INPUT_FROM_QUEUED,  # input_rank
                event.time,  # input_time
                event.id,  # input_event_id
                None,  # terminal_event_id
            )
        case wire.ExecutionCompleted() | ExecutionCompleted():
            return _terminal(event, "completed", event.data.output_data, None)
        case wire.ExecutionFailed() | ExecutionFailed():
            return _terminal(event, "failed", event.data.output_data, event.data.error_message)
        case wire.ExecutionCancelled() | ExecutionCancelled():
            return _terminal(event, "cancelled", None, event.data.reason)
        case wire.ExecutionHeartbeat() | ExecutionHeartbeat():
            # By position, not by keyword: see Execution.
            return Execution(
                data.execution_id,  # id
                data.agent_id,  # agent_id
                data.user_id,  # user_id
                "pending",  # status
                event.time,  # execution_start
                None,  # execution_end
                None,  # input_data
                None,  # output_data
                None,  # error_message
                None,  # timeout_ms
                event.time,  # last_seen_at
                None,  # model
                None,  # tags
                None,  # metadata
                None,  # parent_execution_id
                None,  # trace_id
                None,  # input_tokens
                None,  # output_tokens
                None,  # cost
                None,  # cost_currency
                None,  # input_rank
                None,  # input_time
                None,  # input_event_id
                None,  # terminal_event_id
            )
        case wire.ExecutionTimedOut() | ExecutionTimedOut():
            return _terminal(event, VERDICT_STATUS, None, event.data.reason, seen=False)


def _terminal(
    event: TerminalEvent | ExecutionTimedOut | wire.TerminalEvent | wire.ExecutionTimedOut,
    status: Status,
    output: JsonValue,
    error: str | None,
    *,
    seen: bool = True,
) -> Execution:
    data = event.data
    usage = data.usage
    cost = usage.cost if usage is not None else None
    # By position, not by keyword: see Execution.
    return Execution(
        data.execution_id,  # id
        data.agent_id,  # agent_id
        data.user_id,  # user_id
        status,  # status
        event.time,  # execution_start
        event.time,  # execution_end
        None,  # input_data
        output,  # output_data
        error,  # error_message
        None,  # timeout_ms
        event.time if seen else None,  # last_seen_at
        None,  # model
        None,  # tags
        None,  # metadata
        None,  # parent_execution_id
        None,  # trace_id
        usage.input_tokens if usage is not None else None,  # input_tokens
        usage.output_tokens if usage is not None else None,  # output_tokens
        cost.amount if cost is not None else None,  # cost
        cost.currency if cost is not None else None,  # cost_currency
        None,  # input_rank
        None,  # input_time
        None,  # input_event_id
        event.id,  # terminal_event_id
    )


def merge(a: Execution, b: Execution) -> Execution:
    """Combine two partial rows of the same execution; order of arguments does not matter."""
    if a.id != b.id:
        raise ValueError(f"cannot merge rows of different executions: {a.id} and {b.id}")
    inp = a if _input_key(a) <= _input_key(b) else b
    term = a if _terminal_key(a) <= _terminal_key(b) else b
    # The ids come from the input winner; when neither side has one, from the terminal winner;
    # in rows of heartbeats alone, from the smallest (time, agent id, user id).
    if inp.input_rank is not None:
        ids = inp
    elif term.terminal_event_id is not None:
        ids = term
    else:
        ids = a if _heartbeat_key(a) <= _heartbeat_key(b) else b
    # Execution.start_rank and _later, inline: merge runs for every event of a batch.
    rank_a, rank_b = _start_rank(a), _start_rank(b)
    if rank_a == rank_b:
        start = min(a.execution_start, b.execution_start)
    else:
        start = a.execution_start if rank_a < rank_b else b.execution_start
    if term.terminal_event_id is not None:
        status = term.status
    else:
        status = "running" if START_FROM_STARTED in (rank_a, rank_b) else "pending"
    seen, seen_b = a.last_seen_at, b.last_seen_at
    if seen is None or (seen_b is not None and seen_b > seen):
        seen = seen_b
    # By position, not by keyword: see Execution.
    return Execution(
        a.id,  # id
        ids.agent_id,  # agent_id
        ids.user_id,  # user_id
        status,  # status
        start,  # execution_start
        term.execution_end,  # execution_end
        inp.input_data,  # input_data
        term.output_data,  # output_data
        term.error_message,  # error_message
        inp.timeout_ms,  # timeout_ms
        seen,  # last_seen_at
        inp.model,  # model
        inp.tags,  # tags
        inp.metadata,  # metadata
        inp.parent_execution_id,  # parent_execution_id
        inp.trace_id,  # trace_id
        term.input_tokens,  # input_tokens
        term.output_tokens,  # output_tokens
        term.cost,  # cost
        term.cost_currency,  # cost_currency
        inp.input_rank,  # input_rank
        inp.input_time,  # input_time
        inp.input_event_id,  # input_event_id
        term.terminal_event_id,  # terminal_event_id
    )


# Sort keys: a row that lacks a part sorts after every row that has it.
_LAST_TIME = datetime.max.replace(tzinfo=UTC)
_LAST_ID = UUID(int=(1 << 128) - 1)
_Key: TypeAlias = tuple[int, datetime, UUID]


def _input_key(row: Execution) -> _Key:
    if row.input_rank is None or row.input_time is None or row.input_event_id is None:
        return (INPUT_FROM_QUEUED + 1, _LAST_TIME, _LAST_ID)
    return (row.input_rank, row.input_time, row.input_event_id)


def _terminal_key(row: Execution) -> _Key:
    # A real end (0) before any verdict (1), whatever their times; then by time and id.
    if row.terminal_event_id is None or row.execution_end is None:
        return (2, _LAST_TIME, _LAST_ID)
    return (1 if row.status == VERDICT_STATUS else 0, row.execution_end, row.terminal_event_id)


def _start_rank(row: Execution) -> int:
    rank = row.input_rank
    if rank == INPUT_FROM_STARTED:
        return START_FROM_STARTED
    if rank is not None or row.terminal_event_id is not None:
        return START_FROM_ANY
    return START_FROM_HEARTBEATS


def _heartbeat_key(row: Execution) -> tuple[datetime, UUID, UUID]:
    return (row.execution_start, row.agent_id, row.user_id)


def fold(row: Execution | None, event: AnyEvent) -> Execution:
    """The row after folding ``event`` into ``row`` (None: nothing seen yet)."""
    new = from_event(event)
    return new if row is None else merge(row, new)


def fold_all(events: Sequence[AnyEvent]) -> dict[UUID, Execution]:
    """Fold events of any executions, in the order given, into one row per execution."""
    rows: dict[UUID, Execution] = {}
    for event in events:
        key = event.data.execution_id
        rows[key] = fold(rows.get(key), event)
    return rows
