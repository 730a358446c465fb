"""What a batch of Kafka records means for the projection. Pure; no I/O."""

from __future__ import annotations

import gc
import math
from collections.abc import Iterable, Iterator, Mapping, Sequence, Set
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC
from typing import Protocol
from uuid import UUID

from pydantic import ValidationError

from agent_history.contract.events import Event, RunRequestData, parse_event
from agent_history.projector.fold import Execution, fold
from agent_history.projector.store import Name


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
    if (unstorable := _unstorable(event, value)) is not None:
        return Poison(record, unstorable)
    if record.key is not None and record.key != str(event.data.execution_id).encode():
        return Poison(record, "record key does not match data.execution_id")
    return event


# Byte patterns that may mean a value PostgreSQL cannot hold: a NUL escape, or a number that
# is not finite (NaN, Infinity, an exponent of three digits or more that may overflow).
# The exponent pattern, [0-9][eE][+]?[0-9]{3}, as a plain substring of the value with every
# digit made "0", "E" made "e", "+" deleted and all else made "x": far cheaper than a regex.
# Deleting "+" can join digits that were apart, so a few more values are flagged than the
# pattern says: that only costs them the walk over their data.
_EXPONENT_SHAPES = bytearray(b"x" * 256)
_EXPONENT_SHAPES[ord("0") : ord("9") + 1] = b"0" * 10
_EXPONENT_SHAPES[ord("e")] = _EXPONENT_SHAPES[ord("E")] = ord("e")
_SUSPECT_EXPONENT = b"0e000"


def _suspect(value: bytes) -> bool:
    # A test for one byte (memchr) is several times cheaper than a search for a pattern:
    # each pattern is only searched for in values that hold its first byte.
    if (
        (92 in value and b"\\u0000" in value)  # 92: a backslash
        or (78 in value and b"NaN" in value)  # 78: "N"
        or (73 in value and b"Infinity" in value)  # 73: "I"
    ):
        return True
    return _SUSPECT_EXPONENT in value.translate(_EXPONENT_SHAPES, b"+")


def _unstorable(event: Event, value: bytes) -> str | None:
    """Why the event, though valid, could never be written; None when it can be.

    Such a record must go to the dead-letter topic: left in a batch, it would make that
    batch fail on every retry and stall its partition. A byte scan decides which events
    need their decoded data walked.
    """
    if event.time.year in (1, 9999):  # an offset of under a day moves no other year out
        try:
            event.time.astimezone(UTC)
        except OverflowError:
            return f"event time {event.time.isoformat()} is outside years 1 to 9999 in UTC"
    if not _suspect(value):
        return None
    # UUIDs often hold a digit, an "e" and three digits, so many events get here: one pass
    # over the fields as parsed (a model keeps them in its __dict__) finds both flaws.
    nul, not_finite = _flaws(vars(event.data))
    if nul:
        return "event data contains a NUL character (\\u0000), which cannot be stored"
    if not_finite:
        return "event data contains a number that is not finite (NaN, Infinity or overflow)"
    return None


def _flaws(value: object) -> tuple[bool, bool]:
    """Whether any string or object key inside ``value`` holds a NUL, and any float is not
    finite."""
    nul = not_finite = False
    pending = [value]
    while pending:
        item = pending.pop()
        if isinstance(item, str):
            nul = nul or "\x00" in item
        elif isinstance(item, float):
            not_finite = not_finite or not math.isfinite(item)
        elif isinstance(item, dict):
            for key, inner in item.items():
                nul = nul or (isinstance(key, str) and "\x00" in key)
                pending.append(inner)
        elif isinstance(item, list):
            pending.extend(item)
    return nul, not_finite


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
    """Decode and fold a batch: one row per execution, the newest name per agent and user."""
    with _collector_paused():
        return _changes_of(records, max_bytes)


def _changes_of(records: Iterable[Record], max_bytes: int) -> Changes:
    changes = Changes()
    rows, agents, users = changes.rows, changes.agents, changes.users
    # A record identical to one already decoded (a redelivered duplicate) decodes to the same
    # result, and folding or naming the same event twice changes nothing: only its poison
    # verdict is repeated. Value -> key of the first record with it, and why it is poison.
    keys: dict[bytes, bytes | None] = {}
    reasons: dict[bytes, str] = {}
    for record in records:
        value = record.value
        if value is not None and value in keys and keys[value] == record.key:
            if value in reasons:
                changes.poison.append(Poison(record, reasons[value]))
            continue
        decoded = decode(record, max_bytes)
        if value is not None:
            keys.setdefault(value, record.key)
        if isinstance(decoded, Poison):
            changes.poison.append(decoded)
            if value is not None and keys[value] == record.key:
                reasons.setdefault(value, decoded.reason)
            continue
        event = decoded
        data = event.data
        rows[data.execution_id] = fold(rows.get(data.execution_id), event)
        if isinstance(data, RunRequestData):
            _note_name(agents, data.agent_id, data.agent_name, event)
            _note_name(users, data.user_id, data.user_name, event)
        else:  # names no one: its agent and user need only exist
            if data.agent_id not in agents:
                agents[data.agent_id] = _NO_NAME
            if data.user_id not in users:
                users[data.user_id] = _NO_NAME
    return changes


@contextmanager
def _collector_paused() -> Iterator[None]:
    """Pause the cyclic garbage collector while a batch is decoded.

    Decoding allocates many small objects and keeps a batch's worth alive; the collector's
    passes over them free nothing (events hold no reference cycles) yet doubled the cost of
    decoding. Whatever the batch leaves behind is freed by reference counting, or by the next
    collection once it runs again.
    """
    if not gc.isenabled():
        yield
        return
    gc.disable()
    try:
        yield
    finally:
        gc.enable()


_NO_NAME = Name(None, None)


def _note_name(names: dict[UUID, Name], key: UUID, name: str | None, event: Event) -> None:
    known = names.get(key)
    if name is None:
        if known is None:
            names[key] = _NO_NAME
        return
    if (  # Name.newer, without building a Name for every event
        known is None
        or known.name is None
        or known.time is None
        or (event.time, name) > (known.time, known.name)
    ):
        names[key] = Name(name, event.time)
