"""The wire contract: every event type, the envelope, the topic and the record layout.

Each Kafka record on the topic carries one CloudEvents 1.0 event, in either content mode of the
CloudEvents Kafka protocol binding: structured (the header ``content-type`` is
``application/cloudevents+json`` and the value is the whole event as JSON; what the producer
writes) or binary (the attributes are ``ce_*`` headers, ``content-type`` is the media type of
the data and the value is the data alone; the default of other CloudEvents SDKs). The record key
is the execution id as a UTF-8 string, so all events of one execution land on one partition in
publish order. This module is the only place that defines that format; producer, projector and
tests use it.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from datetime import timedelta
from decimal import Decimal
from typing import Annotated, Any, Literal, TypeAlias
from uuid import UUID

from pydantic import (
    AwareDatetime,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    JsonValue,
    PlainValidator,
    TypeAdapter,
    ValidationError,
    WithJsonSchema,
    model_validator,
)

DEFAULT_TOPIC = "agent-executions"
CONTENT_TYPE_HEADER = "content-type"
CLOUDEVENTS_JSON = "application/cloudevents+json"
ATTRIBUTE_PREFIX = "ce_"  # binary mode: the header of attribute "id" is "ce_id"
SPEC_VERSION = "1.0"
_STRUCTURED = b"application/cloudevents"  # a content-type that marks structured mode

# The dead-letter topic (the event topic's name plus DLQ_SUFFIX) keeps each poison record whole:
# its key, value and headers, and these headers after them, which say why and where from.
DLQ_SUFFIX = ".dlq"
DLQ_REASON = "dlq-reason"
DLQ_ORIGIN_TOPIC = "dlq-original-topic"
DLQ_ORIGIN_PARTITION = "dlq-original-partition"
DLQ_ORIGIN_OFFSET = "dlq-original-offset"
DLQ_CONSUMER_GROUP = "dlq-consumer-group"
DLQ_HEADERS = (
    DLQ_REASON,
    DLQ_ORIGIN_TOPIC,
    DLQ_ORIGIN_PARTITION,
    DLQ_ORIGIN_OFFSET,
    DLQ_CONSUMER_GROUP,
)
# On a record that `agent-history dlq redrive` put back on the event topic: the dead letter it
# came from, "PARTITION:OFFSET" of the dead-letter topic.
DLQ_REDRIVEN_FROM = "dlq-redriven-from"

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


def _absent(value: object) -> bool:
    return value is None


# An optional field added after the first version is left out of what writers encode while it
# has no value, so that events without it stay byte for byte what they were.
Added = Field(default=None, exclude_if=_absent)


class _Frozen(BaseModel):
    # Readers ignore attributes they do not know (forward compatibility); writers never add any.
    model_config = ConfigDict(frozen=True, extra="ignore")


class ExecutionData(_Frozen):
    execution_id: UUID
    agent_id: UUID
    user_id: UUID


# Bounds on what a run may carry, so that every value fits an index entry and a tag or key list
# stays something a person reads.
MAX_LABEL_CHARS = 200  # a model, a tag, a metadata key
MAX_LABELS = 64  # tags, metadata keys
MAX_TOKENS = 10**15
Label: TypeAlias = Annotated[str, Field(min_length=1, max_length=MAX_LABEL_CHARS)]


def _flat(value: object) -> object:
    """A metadata value: a string, an integer, a finite number or a boolean, as given; never
    null or nested, so that `metadata.KEY=VALUE` means one thing."""
    if type(value) not in (str, int, float, bool):
        kind = "null" if value is None else "an array or an object"
        raise ValueError(f"a metadata value is a string, a number or a boolean, not {kind}")
    if isinstance(value, float) and not math.isfinite(value):
        raise ValueError("a metadata value must be a finite number")
    return value


MetadataValue: TypeAlias = Annotated[
    str | bool | int | float,
    PlainValidator(_flat),
    WithJsonSchema({"type": ["string", "number", "boolean"]}),
]


class RunRequestData(ExecutionData):
    """What Queued and Started carry: the run's input and, optionally, display names, a
    maximum run time, the model, tags, metadata and the run that started this one."""

    input_data: dict[str, JsonValue]
    agent_name: str | None = None
    user_name: str | None = None
    # Milliseconds from the Started time; a watchdog times the run out after that. Like the
    # input, the run's value comes from its Started event (a Queued one's until then).
    timeout_ms: Annotated[int, Field(gt=0, le=MAX_TIMEOUT_MS)] | None = None
    # The model the run asks for (OpenTelemetry's gen_ai.request.model).
    model: Label | None = Added
    tags: Annotated[list[Label], Field(max_length=MAX_LABELS)] | None = Added
    metadata: Annotated[dict[Label, MetadataValue], Field(max_length=MAX_LABELS)] | None = Added
    # The run that started this one (a sub-agent's or a tool's run): runs form trees.
    parent_execution_id: UUID | None = Added

    @model_validator(mode="after")
    def _not_its_own_parent(self) -> RunRequestData:
        if self.parent_execution_id == self.execution_id:
            raise ValueError("parent_execution_id must differ from execution_id")
        return self


class Cost(_Frozen):
    """Money as a decimal: written as a string ("0.0042"; a JSON number is read exactly from
    its digits, never through a float), in an ISO 4217 currency."""

    amount: Annotated[Decimal, Field(ge=0, max_digits=30, decimal_places=12, allow_inf_nan=False)]
    currency: Annotated[str, Field(pattern=r"^[A-Z]{3}$")] = "USD"


class Usage(_Frozen):
    """What a run consumed, named after OpenTelemetry's gen_ai.usage.* attributes."""

    input_tokens: Annotated[int, Field(ge=0, le=MAX_TOKENS)] | None = Added
    output_tokens: Annotated[int, Field(ge=0, le=MAX_TOKENS)] | None = Added
    cost: Cost | None = Added


class RunEndData(ExecutionData):
    """What every end of a run may carry: its usage."""

    usage: Usage | None = Added


class CompletedData(RunEndData):
    output_data: JsonValue = None


class FailedData(RunEndData):
    error_message: str
    output_data: JsonValue = None


class CancelledData(RunEndData):
    reason: str | None = None


# Why a watchdog gave up on a run: no sign of its worker for lost_after, pending for longer
# than queued_timeout, or running past its own timeout_ms. Readers take any non-empty reason,
# so that a reason added later is an additive change.
TimeoutReason: TypeAlias = Literal["worker_lost", "queued_too_long", "deadline_exceeded"]


class TimedOutData(RunEndData):
    """A watchdog's verdict: the event's time is ``since + limit_ms``, which the data states,
    so that whoever reaches the same verdict writes the same event."""

    reason: Annotated[str, Field(min_length=1)]  # a TimeoutReason
    # The newest time of the worker's events that the watchdog had seen.
    last_seen_at: AwareDatetime
    # The time the limit ran from (last_seen_at, the queued time or the Started time) ...
    since: AwareDatetime
    # ... and the limit: lost_after, queued_timeout or the run's timeout_ms.
    limit_ms: Annotated[int, Field(ge=0)]


# A W3C traceparent (version, trace id, parent id, flags), lowercase hex, as
# https://www.w3.org/TR/trace-context/ defines it; a version beyond 00 may append fields.
_TRACEPARENT = re.compile(r"[0-9a-f]{2}-[0-9a-f]{32}-[0-9a-f]{16}-[0-9a-f]{2}(-[!-~]*)?")
MAX_TRACESTATE_CHARS = 512  # what W3C asks a vendor to propagate at least


def valid_traceparent(value: object) -> str | None:
    """A valid traceparent as given; anything else reads as absent: tracing data never makes
    an event invalid (it is not worth a dead letter)."""
    if not isinstance(value, str) or _TRACEPARENT.fullmatch(value) is None:
        return None
    version, trace_id, parent_id = value[:2], value[3:35], value[36:52]
    if version == "ff" or (version == "00" and len(value) != 55):
        return None
    if trace_id == "0" * 32 or parent_id == "0" * 16:
        return None
    return value


def valid_tracestate(value: object) -> str | None:
    if not isinstance(value, str) or not 0 < len(value) <= MAX_TRACESTATE_CHARS:
        return None
    if not value.isascii() or not value.isprintable():
        return None
    return value


def trace_id_of(traceparent: str | None) -> str | None:
    """The trace id (32 lowercase hex digits) of a traceparent that the contract accepted."""
    return None if traceparent is None else traceparent[3:35]


class _Envelope(_Frozen):
    specversion: Literal["1.0"]
    id: UUID
    source: Annotated[str, Field(min_length=1)]
    subject: UUID
    time: AwareDatetime
    datacontenttype: Literal["application/json"] = "application/json"
    data: ExecutionData
    # The CloudEvents distributed-tracing extension: the W3C trace context of the operation
    # that produced the event (a tracked run's span). Invalid values read as absent.
    traceparent: Annotated[str | None, BeforeValidator(valid_traceparent)] = Added
    tracestate: Annotated[str | None, BeforeValidator(valid_tracestate)] = Added

    @model_validator(mode="after")
    def _subject_names_the_execution(self) -> _Envelope:
        if self.subject != self.data.execution_id:
            raise ValueError("subject must equal data.execution_id")
        if self.tracestate is not None and self.traceparent is None:
            # W3C: a tracestate means nothing without its (valid) traceparent.
            object.__setattr__(self, "tracestate", None)
        return self

    @property
    def execution_id(self) -> UUID:
        return self.data.execution_id


class ExecutionQueued(_Envelope):
    """A run was asked for and waits for a worker."""

    type: Literal["ExecutionQueued"] = "ExecutionQueued"
    data: RunRequestData


class ExecutionStarted(_Envelope):
    """A worker started the run (with its input; the run's details win from here)."""

    type: Literal["ExecutionStarted"] = "ExecutionStarted"
    data: RunRequestData


class ExecutionCompleted(_Envelope):
    """The run ended well, with its output."""

    type: Literal["ExecutionCompleted"] = "ExecutionCompleted"
    data: CompletedData


class ExecutionFailed(_Envelope):
    """The run ended with an error (``"ValueError: …"``)."""

    type: Literal["ExecutionFailed"] = "ExecutionFailed"
    data: FailedData


class ExecutionCancelled(_Envelope):
    """The run was stopped before it ended by itself."""

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
_DATA = TypeAdapter[JsonValue](JsonValue)


def parse_event(value: bytes | str) -> Event:
    """Decode a structured-mode value (the whole event as JSON); raises ValidationError."""
    return _EVENT.validate_json(value)


def event_from_dict(value: dict[str, Any]) -> Event:
    return _EVENT.validate_python(value)


def encode_event(event: Event) -> bytes:
    """The record value: the event in CloudEvents structured JSON mode."""
    # model_dump_json's bytes, without its round trip through str.
    return event.__pydantic_serializer__.to_json(event)


def encode_binary(event: Event) -> tuple[dict[str, str], bytes]:
    """The record headers and value of ``event`` in binary content mode: each attribute in a
    ``ce_`` header, the data's media type in ``content-type``, the data alone as the value."""
    attributes = event.model_dump(mode="json", exclude={"data", "datacontenttype"})
    headers = {f"{ATTRIBUTE_PREFIX}{name}": str(value) for name, value in attributes.items()}
    headers[CONTENT_TYPE_HEADER] = event.datacontenttype
    return headers, event.data.model_dump_json().encode()


def record_key(execution_id: UUID) -> bytes:
    return str(execution_id).encode()


def record_headers() -> dict[str, str]:
    """The headers of a record in structured mode (``encode_event``'s value)."""
    return {CONTENT_TYPE_HEADER: CLOUDEVENTS_JSON}


def wire_headers(headers: Mapping[str, str]) -> list[tuple[str, bytes]]:
    """Headers as Kafka clients take and give them: (name, UTF-8 value) pairs."""
    return [(name, value.encode()) for name, value in headers.items()]


class InvalidEvent(ValueError):
    """A record that breaks this contract; the message is the reason to dead-letter it with."""


def decode_record(headers: Sequence[tuple[str, bytes | None]], value: bytes) -> Event:
    """The event of one record, in the content mode its headers say; raises InvalidEvent.

    The binding's rule: structured when ``content-type`` starts with
    ``application/cloudevents`` (whatever ``ce_`` headers the record also carries), binary
    otherwise. A record with neither a ``content-type`` nor a ``ce_`` header is read as
    structured, as records always were: it cannot be a binary event, which needs ``ce_id``.
    """
    if is_binary(headers):
        return _binary(headers, value)
    try:
        return _EVENT.validate_json(value)
    except ValidationError as e:
        raise InvalidEvent(_reason(e, binary=False)) from None


def is_binary(headers: Sequence[tuple[str, bytes | None]]) -> bool:
    """Whether a record with these headers is in binary content mode (decode_record's rule)."""
    binary = False
    for name, raw in headers:  # usually one header: this runs for every record
        if name == CONTENT_TYPE_HEADER:
            binary = raw is None or not (
                raw.startswith(_STRUCTURED) or raw[: len(_STRUCTURED)].lower() == _STRUCTURED
            )
            if not binary:
                break
        elif name.startswith(ATTRIBUTE_PREFIX):
            binary = True
    return binary


def _binary(headers: Sequence[tuple[str, bytes | None]], value: bytes) -> Event:
    event: dict[str, Any] = {}
    for name, raw in headers:
        if name == CONTENT_TYPE_HEADER:
            attribute = "datacontenttype"
        elif name.startswith(ATTRIBUTE_PREFIX):
            attribute = name[len(ATTRIBUTE_PREFIX) :]
        else:
            continue
        try:
            if raw is not None:  # a header without a value is as good as absent
                event[attribute] = raw.decode()
        except UnicodeDecodeError:
            raise InvalidEvent(f"invalid event: header {name} is not UTF-8") from None
    try:
        event["data"] = _DATA.validate_json(value)  # the JSON structured mode accepts
    except ValidationError as e:
        raise InvalidEvent(f"invalid event: data: {e.errors()[0]['msg']}") from None
    try:
        return _EVENT.validate_python(event)
    except ValidationError as e:
        raise InvalidEvent(_reason(e, binary=True)) from None


def _reason(error: ValidationError, *, binary: bool) -> str:
    """The dead-letter reason: the first problem, named where the writer put it."""
    first = error.errors(include_url=False, include_input=False)[0]
    if first["type"] == "union_tag_invalid":
        # A reason of its own, so that such records can be re-driven once readers know the type.
        return f"unknown type: {first['ctx']['tag']}"
    path, message = [str(part) for part in first["loc"]], first["msg"]
    if first["type"] == "union_tag_not_found":  # no type at all: say so, not how it was sought
        path, message = ["type"], "Field required"
    elif binary:
        path = path[1:]  # without the name of the type, which the union puts first
    where = ".".join(path) or "event"
    if binary and path and path[0] != "data":
        where = "header " + (
            CONTENT_TYPE_HEADER if path[0] == "datacontenttype" else ATTRIBUTE_PREFIX + path[0]
        )
    more = f" (and {error.error_count() - 1} more)" if error.error_count() > 1 else ""
    return f"invalid event: {where}: {message}{more}"
