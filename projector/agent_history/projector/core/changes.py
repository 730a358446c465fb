"""A batch of records, decoded and folded: what it changes in the read model. Pure; no I/O."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence, Set
from dataclasses import dataclass, field
from typing import TypeAlias
from uuid import UUID

from agent_history.contract.events import RunRequestData, record_key
from agent_history.projector.core import wire
from agent_history.projector.core.decode import Poison, Record, decode_hot
from agent_history.projector.core.fold import Execution, fold, merge
from agent_history.projector.core.names import (
    Name,
    Noted,
    keep_newer,
    names_of,
    note_exists,
    note_name,
)

# The most trace contexts a batch keeps (its span links to them; OpenTelemetry's SDK keeps 128
# links per span by default).
MAX_TRACES = 128


@dataclass(slots=True)
class Changes:
    """A decoded batch, folded: the rows and names to write, the poison to dead-letter, how
    many events of each erased user were dropped, and the first MAX_TRACES distinct
    traceparents of its events (in order, as dict keys)."""

    rows: dict[UUID, Execution] = field(default_factory=dict)
    agents: dict[UUID, Name] = field(default_factory=dict)
    users: dict[UUID, Name] = field(default_factory=dict)
    poison: list[Poison] = field(default_factory=list)
    dropped: Counter[UUID] = field(default_factory=Counter)
    traces: dict[str, None] = field(default_factory=dict)


def changes_of(
    records: Iterable[Record], max_bytes: int, erased: Set[UUID] = frozenset()
) -> Changes:
    """Decode and fold a batch: one row per execution, the newest name per agent and user.

    An event whose ``user_id`` is in ``erased`` is dropped before it is folded or names anyone
    (counted in ``dropped``): an erased user's events leave no trace, even in an execution
    whose other events name another user.
    """
    changes = Changes()
    rows, traces = changes.rows, changes.traces
    agents: Noted = {}
    users: Noted = {}
    # A record identical to one already decoded (a redelivered duplicate) decodes to the same
    # result, and folding or naming the same event twice changes nothing: only its poison
    # verdict, or its being dropped, is repeated (each record is counted, so two batches count
    # as one would). Identical means value, key and headers: in binary mode the headers hold
    # the event's attributes, so one value (the data) may belong to several events. Value ->
    # the first record with it (no new object per record: the batch holds them already), why
    # it is poison, and whose dropped event it is.
    firsts: dict[bytes, Record] = {}
    reasons: dict[bytes, str] = {}
    dropped_of: dict[bytes, UUID] = {}
    for record in records:
        value = record.value
        if value is not None and value in firsts and _same(firsts[value], record):
            if value in reasons:
                changes.poison.append(Poison(record, reasons[value]))
            elif value in dropped_of:
                changes.dropped[dropped_of[value]] += 1
            continue
        decoded = decode_hot(record, max_bytes)
        if value is not None:
            firsts.setdefault(value, record)
        if isinstance(decoded, Poison):
            changes.poison.append(decoded)
            if value is not None and _same(firsts[value], record):
                reasons.setdefault(value, decoded.reason)
            continue
        event = decoded
        data = event.data
        if erased and data.user_id in erased:
            changes.dropped[data.user_id] += 1
            if value is not None and _same(firsts[value], record):
                dropped_of.setdefault(value, data.user_id)
            continue
        rows[data.execution_id] = fold(rows.get(data.execution_id), event)
        if event.traceparent is not None and len(traces) < MAX_TRACES:
            traces[event.traceparent] = None
        if isinstance(data, (wire.RunRequestData, RunRequestData)):
            note_name(agents, data.agent_id, data.agent_name, event.time)
            note_name(users, data.user_id, data.user_name, event.time)
        else:  # names no one: its agent and user need only exist
            note_exists(agents, data.agent_id)
            note_exists(users, data.user_id)
    changes.agents, changes.users = names_of(agents), names_of(users)
    return changes


def combined(first: Changes, then: Changes) -> Changes:
    """The changes of two batches read one after the other, as those of one batch: what
    ``changes_of`` gives for their records together (with the same ``erased``). Takes over
    ``first``."""
    rows = first.rows
    for key, row in then.rows.items():
        had = rows.get(key)
        rows[key] = row if had is None else merge(had, row)
    keep_newer(first.agents, then.agents)
    keep_newer(first.users, then.users)
    first.poison.extend(then.poison)
    first.dropped.update(then.dropped)
    for trace in then.traces:
        if len(first.traces) >= MAX_TRACES:
            break
        first.traces[trace] = None
    return first


# Replay's rows held back, each with the partition its events are read from.
Held: TypeAlias = dict[UUID, tuple[int, Execution]]


def held_back(
    rows: dict[UUID, Execution], held: Held, records: Sequence[Record], most: int
) -> tuple[dict[UUID, Execution], Held]:
    """A batch's rows with those held back before: (the rows to write now, the rows to hold
    back further). For replay's load, whose tables only the rebuild sees; ``records`` are
    the batch's.

    A run that has not ended yet is held back until the next batch with records of its
    partition (known by the records keyed by its id, as the producer keys them): its end is
    most likely there, and then its row is inserted once, where otherwise the merge would
    insert it and then update it, which costs PostgreSQL far more (docs/benchmarks.md,
    thirteenth round). That batch writes it whatever it brings, so the rows held are at most
    those of each partition's last batch. With many partitions, or many runs that never end,
    those could still add up: past ``most`` rows, all are written with this batch. ``merge``
    makes the result the same.
    """
    read = {r.partition for r in records}
    partitions = {r.key: r.partition for r in records}
    write: dict[UUID, Execution] = {}
    hold: Held = {}
    for key, (read_from, row) in held.items():
        if key in rows:
            write[key] = merge(row, rows[key])
        elif read_from in read:
            write[key] = row
        else:
            hold[key] = (read_from, row)
    for key, row in rows.items():
        if key in held:
            continue
        partition = partitions.get(record_key(key)) if row.terminal_event_id is None else None
        if partition is not None:
            hold[key] = (partition, row)
        else:
            write[key] = row
    if len(hold) > most:
        write.update(held_rows(hold))
        return write, {}
    return write, hold


def held_rows(held: Held) -> dict[UUID, Execution]:
    """The rows held back, without the partitions they wait for: to write them all."""
    return {key: row for key, (_, row) in held.items()}


def _same(first: Record, record: Record) -> bool:
    """Whether ``record`` decodes as ``first`` did: the same key and headers (values equal)."""
    return first.key == record.key and first.headers == record.headers
