"""A run's next event, stamped with its own id, time and source; and the spool frame that
carries it: the contract's encoding, keyed by execution id, with the time it was recorded."""

from __future__ import annotations

import os
import time
from datetime import UTC, datetime
from typing import TypeAlias, TypeVar, cast
from uuid import UUID, SafeUUID

from agent_history.contract.events import (
    SPEC_VERSION,
    CancelledData,
    CompletedData,
    Event,
    ExecutionCancelled,
    ExecutionCompleted,
    ExecutionData,
    ExecutionFailed,
    ExecutionHeartbeat,
    ExecutionQueued,
    ExecutionStarted,
    FailedData,
    TerminalEvent,
    encode_event,
    record_key,
)
from agent_history.producer.framing import encode_frame

E = TypeVar("E", bound=ExecutionQueued | ExecutionStarted | ExecutionHeartbeat | TerminalEvent)
EndData: TypeAlias = CompletedData | FailedData | CancelledData
_END_OF: dict[type[ExecutionData], type[TerminalEvent]] = {
    CompletedData: ExecutionCompleted,
    FailedData: ExecutionFailed,
    CancelledData: ExecutionCancelled,
}
_VERSION_4 = 4 << 76 | 0x8000 << 48  # the version and RFC 4122 variant bits of a random UUID
_NOT_VERSION_BITS = ~(0xF000 << 64 | 0xC000 << 48)
_new_object, _set_slot = object.__new__, object.__setattr__
_UNKNOWN = SafeUUID.unknown  # an enum member: looked up once, not on every id


def new_id() -> UUID:
    """What ``uuid4()`` returns (16 bytes of os.urandom, version 4) in half its time: without
    UUID.__init__'s checks of arguments that are right by construction. Three per run."""
    uuid = _new_object(UUID)
    _set_slot(uuid, "int", int.from_bytes(os.urandom(16), "big") & _NOT_VERSION_BITS | _VERSION_4)
    _set_slot(uuid, "is_safe", _UNKNOWN)
    return uuid


def stamp(kind: type[E], data: ExecutionData, source: str) -> E:
    """A new event of ``kind`` about ``data``, validated by the contract like any other."""
    envelope = {
        "specversion": SPEC_VERSION,
        "id": new_id(),
        "source": source,
        "subject": data.execution_id,
        "time": datetime.now(UTC),
        "data": data,
    }
    # model_validate without its Python wrapper: the same validation, on the hot path.
    return cast(E, kind.__pydantic_validator__.validate_python(envelope))


def end_of(data: EndData) -> type[TerminalEvent]:
    """The event that ends a run with ``data``: Completed, Failed or Cancelled."""
    return _END_OF[type(data)]


def frame_of(event: Event) -> bytes:
    return encode_frame(record_key(event.execution_id), encode_event(event), time.time_ns())
