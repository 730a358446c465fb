"""What a batch of Kafka records means for the projection. Pure; no I/O."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence, Set
from dataclasses import dataclass, field
from typing import Protocol
from uuid import UUID

from pydantic import ValidationError

from agent_history.events import Event, RunRequestData, parse_event
from projector.fold import Execution, fold_all
from projector.store import Name


class Record(Protocol):
    """The parts of an aiokafka ConsumerRecord the projector reads."""

    @property
    def topic(self) -> str: ...
    @property
    def partition(self) -> int: ...
    @property
    def offset(self) -> int: ...
    @property
    def key(self) -> bytes | None: ...
    @property
    def value(self) -> bytes | None: ...
    @property
    def headers(self) -> Sequence[tuple[str, bytes]]: ...


@dataclass(frozen=True, slots=True)
class Poison:
    """A record that can never be projected, and why."""

    record: Record
    reason: str


def decode(record: Record, max_bytes: int) -> Event | Poison:
    value = record.value
    if value is None:
        return Poison(record, "empty record value (tombstone)")
    if len(value) > max_bytes:
        return Poison(record, f"record value is {len(value)} bytes, over the {max_bytes} limit")
    try:
        event = parse_event(value)
    except ValidationError as e:
        return Poison(record, _describe(e))
    # PostgreSQL cannot store NUL in text or jsonb: a clear reason beats a batch that never
    # commits. The byte scan is cheap; only its rare hits walk the decoded data.
    if b"\\u0000" in value and _has_nul(event.data.model_dump()):
        return Poison(
            record, "event data contains a NUL character (\\u0000), which cannot be stored"
        )
    if record.key is not None and record.key != str(event.data.execution_id).encode():
        return Poison(record, "record key does not match data.execution_id")
    return event


def _has_nul(value: object) -> bool:
    if isinstance(value, str):
        return "\x00" in value
    if isinstance(value, dict):
        return any(_has_nul(k) or _has_nul(v) for k, v in value.items())
    if isinstance(value, list):
        return any(_has_nul(v) for v in value)
    return False


def _describe(error: ValidationError) -> str:
    first = error.errors(include_url=False, include_input=False)[0]
    where = ".".join(str(part) for part in first["loc"]) or "event"
    more = f" (and {error.error_count() - 1} more)" if error.error_count() > 1 else ""
    return f"invalid event: {where}: {first['msg']}{more}"


@dataclass(frozen=True, slots=True)
class Plan:
    """Which records of a batch to apply, and where each partition stands afterwards."""

    fresh: list[Record]
    next_offsets: dict[int, int]
    # Partitions whose records start after the stored position: seek back, apply nothing.
    rewind: dict[int, int]


def plan_batch(
    records: Iterable[Record], stored: Mapping[int, int], accept_gap: Set[int] = frozenset()
) -> Plan:
    """Drop records already applied (below the stored offset); refuse to skip over a gap.

    A partition in ``accept_gap`` was already rewound once and still starts later: the records
    in between are gone from the log, so the projection carries on from what is there.
    """
    by_partition: dict[int, list[Record]] = {}
    for record in records:
        by_partition.setdefault(record.partition, []).append(record)
    fresh: list[Record] = []
    next_offsets: dict[int, int] = {}
    rewind: dict[int, int] = {}
    for partition, recs in by_partition.items():
        position = stored.get(partition)
        new = [r for r in recs if position is None or r.offset >= position]
        if not new:
            continue
        if position is not None and new[0].offset > position and partition not in accept_gap:
            rewind[partition] = position
            continue
        fresh.extend(new)
        next_offsets[partition] = new[-1].offset + 1
    return Plan(fresh, next_offsets, rewind)


@dataclass(slots=True)
class Changes:
    """A decoded batch, folded: the rows and names to write, and the poison to dead-letter."""

    rows: dict[UUID, Execution] = field(default_factory=dict)
    agents: dict[UUID, Name] = field(default_factory=dict)
    users: dict[UUID, Name] = field(default_factory=dict)
    poison: list[Poison] = field(default_factory=list)


def changes_of(records: Iterable[Record], max_bytes: int) -> Changes:
    changes = Changes()
    events: list[Event] = []
    for record in records:
        decoded = decode(record, max_bytes)
        if isinstance(decoded, Poison):
            changes.poison.append(decoded)
        else:
            events.append(decoded)
    changes.rows = fold_all(events)
    for event in events:
        data = event.data
        if isinstance(data, RunRequestData):
            agent_name, user_name = data.agent_name, data.user_name
        else:
            agent_name = user_name = None
        _note_name(changes.agents, data.agent_id, agent_name, event)
        _note_name(changes.users, data.user_id, user_name, event)
    return changes


def _note_name(names: dict[UUID, Name], key: UUID, name: str | None, event: Event) -> None:
    seen = Name(name, event.time if name is not None else None)
    names[key] = names[key].newer(seen) if key in names else seen
