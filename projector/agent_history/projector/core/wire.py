"""The contract's events as msgspec structs: the hot path's decoder. Pure; no I/O.

The pydantic models of agent_history.contract.events define the contract; these mirror them
field for field, so that the fold takes either. msgspec builds them in C, about twice as fast
as pydantic-core validates a model. ``decode_sure`` returns an event only where msgspec is sure
to read the value exactly as the contract does, and None otherwise: the caller then decodes
with the contract, which also words every reason to reject. "Not sure" covers every place
where the two could differ: a cost (decimal rules), a time with more than six fraction digits
(msgspec rounds, pydantic truncates), bytes that are not UTF-8 (msgspec skips unknown fields
without checking them), nesting deep enough for pydantic's recursion limit, a trace context
that pydantic would drop, the models' own checks (subject, parent) and any value msgspec
rejects. tests/unit/projector/core/test_wire.py holds the two decoders to the same verdicts
and the same rows. msgspec refuses NaN, Infinity and any number past the largest float, typed
or not, so an event decoded here holds only finite floats (decode.py relies on that).
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import Annotated, Any, ClassVar, Literal, TypeAlias
from uuid import UUID

import msgspec
from msgspec import Meta, Struct

from agent_history.contract.events import (
    MAX_LABEL_CHARS,
    MAX_LABELS,
    MAX_TIMEOUT_MS,
    MAX_TOKENS,
    valid_traceparent,
    valid_tracestate,
)

Label: TypeAlias = Annotated[str, Meta(min_length=1, max_length=MAX_LABEL_CHARS)]
Time: TypeAlias = Annotated[datetime, Meta(tz=True)]
Tokens: TypeAlias = Annotated[int, Meta(ge=0, le=MAX_TOKENS)]


class _Frozen(Struct, frozen=True, kw_only=True, gc=False):
    # gc=False: no cycles are possible, and the collector need not track a batch's events.
    # (mypy wants frozen and msgspec wants kw_only repeated on every subclass.)
    pass


class ExecutionData(_Frozen, frozen=True, kw_only=True):
    execution_id: UUID
    agent_id: UUID
    user_id: UUID


class RunRequestData(ExecutionData, frozen=True, kw_only=True):
    input_data: dict[str, Any]
    agent_name: str | None = None
    user_name: str | None = None
    timeout_ms: Annotated[int, Meta(gt=0, le=MAX_TIMEOUT_MS)] | None = None
    model: Label | None = None
    tags: Annotated[list[Label], Meta(max_length=MAX_LABELS)] | None = None
    # msgspec rejects a number past the largest float, so every float here is finite, as the
    # contract's metadata values must be.
    metadata: (
        Annotated[dict[Label, str | bool | int | float], Meta(max_length=MAX_LABELS)] | None
    ) = None
    parent_execution_id: UUID | None = None


class Usage(_Frozen, frozen=True, kw_only=True):
    input_tokens: Tokens | None = None
    output_tokens: Tokens | None = None
    # Only null: a cost's decimal rules are the contract's to apply.
    cost: None = None


class RunEndData(ExecutionData, frozen=True, kw_only=True):
    usage: Usage | None = None


class CompletedData(RunEndData, frozen=True, kw_only=True):
    output_data: Any = None


class FailedData(RunEndData, frozen=True, kw_only=True):
    error_message: str
    output_data: Any = None


class CancelledData(RunEndData, frozen=True, kw_only=True):
    reason: str | None = None


class TimedOutData(RunEndData, frozen=True, kw_only=True):
    reason: Annotated[str, Meta(min_length=1)]
    last_seen_at: Time
    since: Time
    limit_ms: Annotated[int, Meta(ge=0)]


class _Envelope(_Frozen, frozen=True, kw_only=True, tag_field="type", tag=True):
    # tag=True: each event's "type" is its class's name, as in the contract.
    specversion: Literal["1.0"]
    id: UUID
    source: Annotated[str, Meta(min_length=1)]
    subject: UUID
    time: Time
    datacontenttype: Literal["application/json"] = "application/json"
    traceparent: str | None = None
    tracestate: str | None = None


class ExecutionQueued(_Envelope, frozen=True, kw_only=True):
    type: ClassVar[Literal["ExecutionQueued"]] = "ExecutionQueued"
    data: RunRequestData


class ExecutionStarted(_Envelope, frozen=True, kw_only=True):
    type: ClassVar[Literal["ExecutionStarted"]] = "ExecutionStarted"
    data: RunRequestData


class ExecutionCompleted(_Envelope, frozen=True, kw_only=True):
    type: ClassVar[Literal["ExecutionCompleted"]] = "ExecutionCompleted"
    data: CompletedData


class ExecutionFailed(_Envelope, frozen=True, kw_only=True):
    type: ClassVar[Literal["ExecutionFailed"]] = "ExecutionFailed"
    data: FailedData


class ExecutionCancelled(_Envelope, frozen=True, kw_only=True):
    type: ClassVar[Literal["ExecutionCancelled"]] = "ExecutionCancelled"
    data: CancelledData


class ExecutionHeartbeat(_Envelope, frozen=True, kw_only=True):
    type: ClassVar[Literal["ExecutionHeartbeat"]] = "ExecutionHeartbeat"
    data: ExecutionData


class ExecutionTimedOut(_Envelope, frozen=True, kw_only=True):
    type: ClassVar[Literal["ExecutionTimedOut"]] = "ExecutionTimedOut"
    data: TimedOutData


Event: TypeAlias = (
    ExecutionQueued
    | ExecutionStarted
    | ExecutionCompleted
    | ExecutionFailed
    | ExecutionCancelled
    | ExecutionHeartbeat
    | ExecutionTimedOut
)
TerminalEvent: TypeAlias = ExecutionCompleted | ExecutionFailed | ExecutionCancelled

_DECODER = msgspec.json.Decoder(Event)
# pydantic rejects JSON nested about 250 deep; fewer brackets than this cannot nest that deep.
_MAX_BRACKETS = 200
# A fraction of seven digits or more, as a time may have (or any number: then not sure either).
_LONG_FRACTION = re.compile(rb"\.[0-9]{7}")


def decode_sure(value: bytes) -> Event | None:
    """The event in a structured-mode ``value``, or None when msgspec might read it otherwise
    than the contract does."""
    if (
        _LONG_FRACTION.search(value) is not None
        or value.count(b"[") + value.count(b"{") >= _MAX_BRACKETS
        or not (value.isascii() or _utf8(value))
    ):
        return None
    try:
        event = _DECODER.decode(value)
    except msgspec.DecodeError:  # ValidationError is one
        return None
    data = event.data
    if event.subject.int != data.execution_id.int or event.time.year in (1, 9999):
        return None  # the contract's reason for the one; the exact time in the other's
    if (
        type(data) is RunRequestData
        and data.parent_execution_id is not None
        and data.parent_execution_id.int == data.execution_id.int
    ):
        return None
    traceparent, tracestate = event.traceparent, event.tracestate
    if traceparent is not None and valid_traceparent(traceparent) is None:
        return None  # the contract reads it as absent
    if tracestate is not None and (traceparent is None or valid_tracestate(tracestate) is None):
        return None
    return event


def _utf8(value: bytes) -> bool:
    try:
        value.decode()
    except UnicodeDecodeError:
        return False
    return True


def fields_of(data: ExecutionData) -> dict[str, Any]:
    """The data's fields by name, as a pydantic model's ``__dict__`` holds them."""
    return msgspec.structs.asdict(data)
