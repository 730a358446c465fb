"""A run's next event, stamped with its own id, time and source; and the spool frame that
carries it: the contract's encoding, keyed by execution id, with the time it was recorded."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import TypeAlias, TypeVar, cast
from uuid import uuid4

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


def stamp(kind: type[E], data: ExecutionData, source: str) -> E:
    """A new event of ``kind`` about ``data``, validated by the contract like any other."""
    envelope = {
        "specversion": SPEC_VERSION,
        "id": uuid4(),
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
