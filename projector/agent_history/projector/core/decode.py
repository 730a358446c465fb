"""A Kafka record to an event, or to the reason it is poison. Pure; no I/O."""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC
from typing import Protocol, TypeAlias, TypeVar
from uuid import UUID

from agent_history.contract.events import Event, InvalidEvent, decode_record, is_binary
from agent_history.projector.core import wire

# What decode gives: the contract's pydantic event, or its msgspec mirror (core/wire.py).
AnyEvent: TypeAlias = Event | wire.Event
E = TypeVar("E", bound=AnyEvent)


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
    """The record's event as the contract reads it, or why it is poison."""
    value = record.value
    if value is None:
        return Poison(record, "empty record value (tombstone)")
    if len(value) > max_bytes:
        return Poison(record, f"record value is {len(value)} bytes, over the {max_bytes} limit")
    try:
        event = decode_record(record.headers, value)
    except InvalidEvent as e:
        return Poison(record, str(e))
    return _checked(record, event, value)


def decode_hot(record: Record, max_bytes: int) -> AnyEvent | Poison:
    """``decode`` for a batch: msgspec's mirror of the event (wire.py) where it is sure to
    read the record as the contract does, else what ``decode`` gives. Same verdicts."""
    value = record.value
    if value is None or len(value) > max_bytes or is_binary(record.headers):
        return decode(record, max_bytes)
    event = wire.decode_sure(value)
    if event is None:  # not sure, or poison: the contract decides and says why
        return decode(record, max_bytes)
    return _checked(record, event, value)


def _checked(record: Record, event: E, value: bytes) -> E | Poison:
    """``event`` unless it cannot be stored or the record's key names another execution."""
    if (unstorable := _unstorable(event, value)) is not None:
        return Poison(record, unstorable)
    if record.key is not None and not is_key_of(record.key, event.data.execution_id):
        return Poison(record, "record key does not match data.execution_id")
    return event


def is_key_of(key: bytes, execution_id: UUID) -> bool:
    """Whether ``key`` is ``record_key(execution_id)``, without building the UUID's string.

    str(UUID) (a Python function) is its 32 hex digits with dashes put in: a key of 36
    bytes with dashes at those places and those digits elsewhere is exactly that string.
    """
    return (
        len(key) == 36
        and key[8] == key[13] == key[18] == key[23] == 45  # 45: "-"
        and key.replace(b"-", b"") == execution_id.hex.encode()
    )


# Byte patterns that may mean a value PostgreSQL cannot hold: a NUL escape, or a number that
# is not finite: NaN, Infinity, or one past the largest float (~1.8e308). Such a number has
# an exponent of three digits or more, or 200 digits or more before its exponent (with two
# exponent digits it needs over 210 of them). In JSON a number ends before a comma, "}", "]"
# or whitespace, so a long exponent reads [0-9][eE][+]?[0-9]{3,} and then one of those;
# digits in strings (say, "1e2345-" in a UUID) are followed by other bytes.
# First as plain substrings of a copy of the value with every digit made "0", "E" made "e",
# "+" deleted, the bytes that end a number made ";" and all else made "x" (far cheaper than a
# regex); only a copy that holds "0e000" is then searched for the exponent's end. Deleting
# "+" can join digits that were apart, so a few more values are flagged than the patterns
# say: that only costs them the walk over their data.
_NUMBER_SHAPES = bytearray(b"x" * 256)
_NUMBER_SHAPES[ord("0") : ord("9") + 1] = b"0" * 10
_NUMBER_SHAPES[ord("e")] = _NUMBER_SHAPES[ord("E")] = ord("e")
for _end in b",}] \t\n\r":
    _NUMBER_SHAPES[_end] = ord(";")
_EXPONENT = b"0e000"
_ENDED_EXPONENT = re.compile(rb"0e000+(?:;|$)")  # or a bare number's, at the end
_DIGITS = b"0" * 200


def suspect(value: bytes) -> bool:
    """Whether ``value`` may hold what PostgreSQL cannot store (then its data is walked)."""
    # A test for one byte (memchr) is much cheaper than a search for a pattern: each pattern
    # is only searched for in values that hold its first byte.
    if (
        _may_hold_nul(value)
        or (78 in value and b"NaN" in value)  # 78: "N"
        or (73 in value and b"Infinity" in value)  # 73: "I"
    ):
        return True
    shapes = value.translate(_NUMBER_SHAPES, b"+")
    if _EXPONENT in shapes and _ENDED_EXPONENT.search(shapes) is not None:
        return True
    return len(shapes) >= 200 and _DIGITS in shapes


def _may_hold_nul(value: bytes) -> bool:
    return 92 in value and b"\\u0000" in value  # 92: a backslash


def _unstorable(event: AnyEvent, value: bytes) -> str | None:
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
    data = event.data
    if isinstance(data, wire.ExecutionData):
        # msgspec refuses NaN, Infinity and every number past the largest float (wire.py), so
        # of the two flaws only a NUL can be there, and the scan for numbers is not needed.
        if not _may_hold_nul(value):
            return None
        fields = wire.fields_of(data)
    elif suspect(value):
        fields = vars(data)
    else:
        return None
    # One pass over the fields as parsed (a model keeps them in its __dict__) finds both flaws.
    nul, not_finite = _flaws(fields)
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
