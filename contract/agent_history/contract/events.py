"""The wire contract: every event type, the envelope, the topic and the record layout.

Each Kafka record on the topic carries one CloudEvents 1.0 event in structured JSON mode.
The record key is the execution id as a UTF-8 string, so all events of one execution land on
one partition in publish order; the header ``content-type`` is ``application/cloudevents+json``.
This module is the only place that defines that format; producer, projector and tests use it.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated, Any, Literal, TypeAlias
from uuid import UUID

from pydantic import (
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    JsonValue,
    TypeAdapter,
    model_validator,
)

DEFAULT_TOPIC = "agent-executions"
CONTENT_TYPE_HEADER = "content-type"
CLOUDEVENTS_JSON = "application/cloudevents+json"
SPEC_VERSION = "1.0"

EventType: TypeAlias = Literal[
    "ExecutionQueued",
    "ExecutionStarted",
    "ExecutionCompleted",
    "ExecutionFailed",
    "ExecutionCancelled",
    "ExecutionHeartbeat",
    "ExecutionTimedOut",
]

# How often a tracked run says it is alive by default (the producer's heartbeat interval); a
# watchdog gives up on a run after several missed beats (its lost_after).
HEARTBEAT_INTERVAL = timedelta(seconds=15)
# The longest run time a run may ask for (366 days).
MAX_TIMEOUT_MS = 366 * 86_400_000


class _Frozen(BaseModel):
    # Readers ignore attributes they do not know (forward compatibility); writers never add any.
    model_config = ConfigDict(frozen=True, extra="ignore")


class ExecutionData(_Frozen):
    execution_id: UUID
    agent_id: UUID
    user_id: UUID


class RunRequestData(ExecutionData):
    """What Queued and Started carry: the run's input and, optionally, display names and a
    maximum run time."""

    input_data: dict[str, JsonValue]
    agent_name: str | None = None
    user_name: str | None = None
    # Milliseconds from the Started time; a watchdog times the run out after that. Like the
    # input, the run's value comes from its Started event (a Queued one's until then).
    timeout_ms: Annotated[int, Field(gt=0, le=MAX_TIMEOUT_MS)] | None = None


class CompletedData(ExecutionData):
    output_data: JsonValue = None


class FailedData(ExecutionData):
    error_message: str
    output_data: JsonValue = None


class CancelledData(ExecutionData):
    reason: str | None = None


# Why a watchdog gave up on a run: no sign of its worker for lost_after, pending for longer
# than queued_timeout, or running past its own timeout_ms.
TimeoutReason: TypeAlias = Literal["worker_lost", "queued_too_long", "deadline_exceeded"]


class TimedOutData(ExecutionData):
    """A watchdog's verdict: the event's time is ``since + limit_ms``, which the data states,
    so that whoever reaches the same verdict writes the same event."""

    reason: TimeoutReason
    # The newest time of the worker's events that the watchdog had seen.
    last_seen_at: AwareDatetime
    # The time the limit ran from (last_seen_at, the queued time or the Started time) ...
    since: AwareDatetime
    # ... and the limit: lost_after, queued_timeout or the run's timeout_ms.
    limit_ms: Annotated[int, Field(ge=0)]


class _Envelope(_Frozen):
    specversion: Literal["1.0"]
    id: UUID
    source: Annotated[str, Field(min_length=1)]
    subject: UUID
    time: AwareDatetime
    datacontenttype: Literal["application/json"] = "application/json"
    data: ExecutionData

    @model_validator(mode="after")
    def _subject_names_the_execution(self) -> _Envelope:
        if self.subject != self.data.execution_id:
            raise ValueError("subject must equal data.execution_id")
        return self

    @property
    def execution_id(self) -> UUID:
        return self.data.execution_id


class ExecutionQueued(_Envelope):
    type: Literal["ExecutionQueued"] = "ExecutionQueued"
    data: RunRequestData


class ExecutionStarted(_Envelope):
    type: Literal["ExecutionStarted"] = "ExecutionStarted"
    data: RunRequestData


class ExecutionCompleted(_Envelope):
    type: Literal["ExecutionCompleted"] = "ExecutionCompleted"
    data: CompletedData


class ExecutionFailed(_Envelope):
    type: Literal["ExecutionFailed"] = "ExecutionFailed"
    data: FailedData


class ExecutionCancelled(_Envelope):
    type: Literal["ExecutionCancelled"] = "ExecutionCancelled"
    data: CancelledData


class ExecutionHeartbeat(_Envelope):
    """The worker is still running the execution (sent every heartbeat interval)."""

    type: Literal["ExecutionHeartbeat"] = "ExecutionHeartbeat"
    data: ExecutionData


class ExecutionTimedOut(_Envelope):
    """A watchdog's verdict that the run will not end by itself; a real end still wins."""

    type: Literal["ExecutionTimedOut"] = "ExecutionTimedOut"
    data: TimedOutData


Event: TypeAlias = Annotated[
    ExecutionQueued
    | ExecutionStarted
    | ExecutionCompleted
    | ExecutionFailed
    | ExecutionCancelled
    | ExecutionHeartbeat
    | ExecutionTimedOut,
    Field(discriminator="type"),
]
# The worker's own ends; a watchdog's verdict (ExecutionTimedOut) gives way to any of them.
TerminalEvent: TypeAlias = ExecutionCompleted | ExecutionFailed | ExecutionCancelled

_EVENT = TypeAdapter[Event](Event)


def parse_event(value: bytes | str) -> Event:
    """Decode one record value; raises pydantic.ValidationError when it breaks the contract."""
    return _EVENT.validate_json(value)


def event_from_dict(value: dict[str, Any]) -> Event:
    return _EVENT.validate_python(value)


def encode_event(event: Event) -> bytes:
    """The record value: the event in CloudEvents structured JSON mode."""
    return event.model_dump_json().encode()


def record_key(execution_id: UUID) -> bytes:
    return str(execution_id).encode()


def record_headers() -> dict[str, str]:
    return {CONTENT_TYPE_HEADER: CLOUDEVENTS_JSON}
