"""The wire contract: CloudEvents 1.0 structured JSON, one model per event type."""

from __future__ import annotations

import copy
import json
from datetime import UTC, datetime
from typing import Any
from uuid import UUID

import pytest
from pydantic import ValidationError

from agent_history.contract.events import (
    CLOUDEVENTS_JSON,
    MAX_TIMEOUT_MS,
    Event,
    EventType,
    ExecutionCancelled,
    ExecutionCompleted,
    ExecutionFailed,
    ExecutionHeartbeat,
    ExecutionQueued,
    ExecutionStarted,
    ExecutionTimedOut,
    InvalidEvent,
    decode_record,
    encode_event,
    event_from_dict,
    parse_event,
    record_headers,
    record_key,
)

EVENT_ID = "0f8fad5b-d9cb-469f-a165-70867728950e"
EXECUTION = "7c9e6679-7425-40de-944b-e07fc1f90ae7"
AGENT = "a0000000-0000-4000-8000-000000000001"
USER = "b0000000-0000-4000-8000-000000000001"

# Every type with every field it can carry, optional ones included.
FULL_DATA: dict[EventType, dict[str, Any]] = {
    "ExecutionQueued": {
        "input_data": {"prompt": "hello", "tools": ["search"], "depth": 2},
        "agent_name": "Researcher",
        "user_name": "Ada",
    },
    "ExecutionStarted": {
        "input_data": {"prompt": "hello"},
        "agent_name": "Researcher",
        "timeout_ms": 30_000,
        "model": "gpt-4o",
        "tags": ["search", "eu ✓"],
        "metadata": {"env": "prod", "attempt": 2, "temperature": 0.2, "cached": False},
        "parent_execution_id": "3c4d5e6f-7a8b-4c9d-8e0f-1a2b3c4d5e6f",
    },
    "ExecutionCompleted": {
        "output_data": {"answer": 42, "sources": [None, 1.5, True]},
        "usage": {
            "input_tokens": 812,
            "output_tokens": 64,
            "cost": {"amount": "0.000912", "currency": "USD"},
        },
    },
    "ExecutionFailed": {
        "error_message": "ValueError: boom",
        "output_data": "partial",
        "usage": {"input_tokens": 5},
    },
    "ExecutionCancelled": {"reason": "user pressed stop", "usage": {"output_tokens": 0}},
    "ExecutionHeartbeat": {},
    "ExecutionTimedOut": {
        "reason": "worker_lost",
        "last_seen_at": "2024-05-01T11:59:00.250000Z",
        "since": "2024-05-01T11:59:00.250000Z",
        "limit_ms": 60_000,
        "usage": {"cost": {"amount": "1.5", "currency": "EUR"}},
    },
}
MODELS: dict[EventType, type[Event]] = {
    "ExecutionQueued": ExecutionQueued,
    "ExecutionStarted": ExecutionStarted,
    "ExecutionCompleted": ExecutionCompleted,
    "ExecutionFailed": ExecutionFailed,
    "ExecutionCancelled": ExecutionCancelled,
    "ExecutionHeartbeat": ExecutionHeartbeat,
    "ExecutionTimedOut": ExecutionTimedOut,
}


def envelope(kind: EventType) -> dict[str, Any]:
    """The event as a JSON object, as it stands on the wire."""
    return {
        "specversion": "1.0",
        "id": EVENT_ID,
        "source": "urn:agent-worker:1",
        "subject": EXECUTION,
        "time": "2024-05-01T12:00:00.250000+00:00",
        "type": kind,
        "datacontenttype": "application/json",
        "data": {
            "execution_id": EXECUTION,
            "agent_id": AGENT,
            "user_id": USER,
            **copy.deepcopy(FULL_DATA[kind]),
        },
    }


def parse(value: dict[str, Any]) -> Event:
    return parse_event(json.dumps(value))


@pytest.mark.parametrize("kind", list(FULL_DATA))
def test_every_type_parses_and_encodes_back_to_the_same_event(kind: EventType) -> None:
    event = parse(envelope(kind))

    assert type(event) is MODELS[kind]
    assert event.type == kind
    assert (event.id, event.subject, event.execution_id) == (
        UUID(EVENT_ID),
        UUID(EXECUTION),
        UUID(EXECUTION),
    )
    assert event.time == datetime(2024, 5, 1, 12, 0, 0, 250000, tzinfo=UTC)
    assert event.data.model_dump(mode="json", exclude_none=True) == {
        "execution_id": EXECUTION,
        "agent_id": AGENT,
        "user_id": USER,
        **FULL_DATA[kind],
    }
    assert parse_event(encode_event(event)) == event


@pytest.mark.parametrize("kind", list(FULL_DATA))
def test_encoding_writes_the_cloudevents_attributes_and_nothing_else(kind: EventType) -> None:
    written = json.loads(encode_event(parse(envelope(kind))))

    assert set(written) == {
        "specversion",
        "id",
        "source",
        "subject",
        "time",
        "type",
        "datacontenttype",
        "data",
    }
    assert (written["specversion"], written["type"], written["datacontenttype"]) == (
        "1.0",
        kind,
        "application/json",
    )
    assert (written["id"], written["subject"], written["data"]["execution_id"]) == (
        EVENT_ID,
        EXECUTION,
        EXECUTION,
    )
    assert datetime.fromisoformat(written["time"]) == datetime(2024, 5, 1, 12, 0, 0, 250000, UTC)


def test_record_key_is_the_execution_id_in_utf8() -> None:
    key = record_key(UUID(EXECUTION))

    assert key == b"7c9e6679-7425-40de-944b-e07fc1f90ae7"
    assert key.decode("utf-8") == str(parse(envelope("ExecutionStarted")).execution_id)


def test_record_headers_name_the_cloudevents_json_content_type() -> None:
    assert record_headers() == {"content-type": "application/cloudevents+json"}
    assert CLOUDEVENTS_JSON == "application/cloudevents+json"


def test_unknown_attributes_are_ignored_at_the_top_level_and_in_data() -> None:
    plain = envelope("ExecutionFailed")
    extended = envelope("ExecutionFailed")
    extended["sampledrate"] = 10  # traceparent is known: see tests/unit/test_trace_context.py
    extended["partitionkey"] = EXECUTION
    extended["data"]["retry_count"] = 3
    extended["data"]["model"] = {"name": "some-llm", "temperature": 0.2}

    assert parse(extended) == parse(plain)


@pytest.mark.parametrize(
    ("kind", "path"),
    [
        ("ExecutionCompleted", ("id",)),
        ("ExecutionCompleted", ("source",)),
        ("ExecutionCompleted", ("time",)),
        ("ExecutionCompleted", ("subject",)),
        ("ExecutionCompleted", ("type",)),
        ("ExecutionCompleted", ("specversion",)),
        ("ExecutionCompleted", ("data",)),
        ("ExecutionCompleted", ("data", "execution_id")),
        ("ExecutionCancelled", ("data", "agent_id")),
        ("ExecutionQueued", ("data", "user_id")),
        ("ExecutionFailed", ("data", "error_message")),
        ("ExecutionStarted", ("data", "input_data")),
        ("ExecutionQueued", ("data", "input_data")),
        ("ExecutionTimedOut", ("data", "reason")),
        ("ExecutionTimedOut", ("data", "last_seen_at")),
        ("ExecutionTimedOut", ("data", "since")),
        ("ExecutionTimedOut", ("data", "limit_ms")),
        ("ExecutionHeartbeat", ("data", "execution_id")),
    ],
)
def test_a_missing_required_field_is_rejected(kind: EventType, path: tuple[str, ...]) -> None:
    value = envelope(kind)
    parent = value
    for part in path[:-1]:
        parent = parent[part]
    del parent[path[-1]]

    with pytest.raises(ValidationError):
        parse(value)


@pytest.mark.parametrize(
    ("field", "wrong"),
    [
        ("time", "2024-05-01T12:00:00"),  # no UTC offset: which instant is it?
        ("time", "yesterday"),
        ("specversion", "0.3"),
        ("type", "ExecutionPaused"),
        ("source", ""),
        ("id", "not-a-uuid"),
        ("datacontenttype", "text/plain"),
    ],
)
def test_a_malformed_attribute_is_rejected(field: str, wrong: str) -> None:
    value = envelope("ExecutionStarted")
    value[field] = wrong

    with pytest.raises(ValidationError):
        parse(value)


@pytest.mark.parametrize(
    ("kind", "field", "wrong"),
    [
        ("ExecutionStarted", "timeout_ms", 0),
        ("ExecutionStarted", "timeout_ms", -5),
        ("ExecutionQueued", "timeout_ms", MAX_TIMEOUT_MS + 1),
        ("ExecutionStarted", "timeout_ms", 1.5),
        ("ExecutionTimedOut", "reason", ""),
        ("ExecutionTimedOut", "last_seen_at", "2024-05-01T11:59:00"),  # no offset
        ("ExecutionTimedOut", "limit_ms", -1),
        ("ExecutionStarted", "model", ""),
        ("ExecutionStarted", "tags", "one"),
        ("ExecutionStarted", "tags", [""]),
        ("ExecutionStarted", "tags", [f"t{i}" for i in range(65)]),
        ("ExecutionStarted", "metadata", ["a"]),
        ("ExecutionStarted", "metadata", {"k": {"nested": 1}}),
        ("ExecutionStarted", "metadata", {"k": None}),
        ("ExecutionStarted", "parent_execution_id", "not a uuid"),
        ("ExecutionStarted", "parent_execution_id", EXECUTION),  # its own parent
        ("ExecutionCompleted", "usage", {"input_tokens": -1}),
        ("ExecutionFailed", "usage", {"output_tokens": 2.5}),
        ("ExecutionCancelled", "usage", {"cost": {"amount": "ten"}}),
        ("ExecutionCompleted", "usage", {"cost": {"amount": "-0.01"}}),
        ("ExecutionCompleted", "usage", {"cost": {"amount": "NaN"}}),
        ("ExecutionCompleted", "usage", {"cost": {"amount": "0.1234567890123"}}),  # 13 places
        ("ExecutionCompleted", "usage", {"cost": {"amount": "1", "currency": "usd"}}),
        ("ExecutionCompleted", "usage", "lots"),
    ],
)
def test_a_malformed_data_field_is_rejected(kind: EventType, field: str, wrong: object) -> None:
    value = envelope(kind)
    value["data"][field] = wrong

    with pytest.raises(ValidationError):
        parse(value)


@pytest.mark.parametrize(
    ("kind", "field", "wrong", "reason"),
    [
        (
            "ExecutionCompleted",
            "usage",
            {"input_tokens": -1},
            "invalid event: data.usage.input_tokens: Input should be greater than or equal to 0",
        ),
        (
            "ExecutionStarted",
            "metadata",
            ["a"],
            "invalid event: data.metadata: Input should be an object",
        ),
        (
            "ExecutionStarted",
            "metadata",
            {"k": [1]},
            "invalid event: data.metadata.k: Value error, a metadata value is a string, a "
            "number or a boolean, not an array or an object",
        ),
        (
            "ExecutionFailed",
            "usage",
            {"cost": {"amount": "ten"}},
            "invalid event: data.usage.cost.amount: Input should be a valid decimal",
        ),
    ],
)
def test_a_bad_value_is_dead_lettered_with_a_reason_that_names_it(
    kind: EventType, field: str, wrong: object, reason: str
) -> None:
    value = envelope(kind)
    value["data"][field] = wrong
    structured = json.dumps(value).encode()
    headers, data = _binary_of(value)

    with pytest.raises(InvalidEvent) as in_structured:
        decode_record([("content-type", CLOUDEVENTS_JSON.encode())], structured)
    with pytest.raises(InvalidEvent) as in_binary:
        decode_record(headers, data)

    assert str(in_structured.value) == reason.replace("data.", f"{kind}.data.", 1)
    where = reason.split(": ")[1]  # binary mode validates the parsed data: its words may differ
    assert str(in_binary.value).startswith(f"invalid event: {where}: ")


def _binary_of(value: dict[str, Any]) -> tuple[list[tuple[str, bytes]], bytes]:
    """The same event as a binary-mode record written by hand."""
    headers = [(f"ce_{k}", str(v).encode()) for k, v in value.items() if k != "data"]
    return [*headers, ("content-type", b"application/json")], json.dumps(value["data"]).encode()


def test_a_cost_written_as_a_json_number_is_read_exactly_from_its_digits() -> None:
    value = envelope("ExecutionCompleted")
    value["data"]["usage"] = {"cost": {"amount": 0.1}}
    text = json.dumps(value).replace("0.1", "0.100000000001")

    event = parse_event(text)

    assert isinstance(event, ExecutionCompleted)
    assert event.data.usage is not None
    assert event.data.usage.cost is not None
    assert str(event.data.usage.cost.amount) == "0.100000000001"


def test_added_fields_without_a_value_are_left_out_of_what_writers_encode() -> None:
    """Events that carry none of them stay byte for byte what the first version wrote."""
    value = envelope("ExecutionStarted")
    for added in ("model", "tags", "metadata", "parent_execution_id"):
        del value["data"][added]
    completed = envelope("ExecutionCompleted")
    del completed["data"]["usage"]

    for event in (parse(value), parse(completed)):
        data = json.loads(encode_event(event))["data"]
        assert not {"model", "tags", "metadata", "parent_execution_id", "usage"} & set(data)


def test_a_verdict_reason_this_version_does_not_write_is_still_read() -> None:
    """A later watchdog may give new reasons: an additive change, like a new optional field."""
    value = envelope("ExecutionTimedOut")
    value["data"]["reason"] = "host_drained"

    event = parse(value)

    assert isinstance(event, ExecutionTimedOut)
    assert event.data.reason == "host_drained"


def test_subject_must_name_the_execution_of_the_data() -> None:
    value = envelope("ExecutionCompleted")
    value["subject"] = "7c9e6679-7425-40de-944b-e07fc1f90ae8"

    with pytest.raises(ValidationError, match=r"subject must equal data\.execution_id"):
        parse(value)


def test_events_are_immutable() -> None:
    event = parse(envelope("ExecutionStarted"))

    with pytest.raises(ValidationError):
        event.source = "elsewhere"  # type: ignore[misc]


# Written by hand, the way a worker in another language would: keys in its own order,
# nanoseconds and a non-UTC offset in the time, a CloudEvents extension attribute, no
# datacontenttype (it is optional), and data fields beyond the contract.
HAND_WRITTEN_FAILED = b"""
{
  "type": "ExecutionFailed",
  "specversion": "1.0",
  "source": "urn:agent-worker:node-7",
  "id": "0F8FAD5B-D9CB-469F-A165-70867728950E",
  "time": "2024-05-01T14:00:03.123456789+02:00",
  "subject": "7c9e6679-7425-40de-944b-e07fc1f90ae7",
  "traceparent": "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
  "data": {
    "user_id": "b0000000-0000-4000-8000-000000000001",
    "agent_id": "a0000000-0000-4000-8000-000000000001",
    "execution_id": "7c9e6679-7425-40de-944b-e07fc1f90ae7",
    "error_message": "TimeoutError: the tool did not answer in 30 s",
    "output_data": {"steps": [{"tool": "search", "ok": true}, {"tool": "fetch", "ok": false}]},
    "attempt": 2
  }
}
"""

HAND_WRITTEN_QUEUED = (
    '{"specversion":"1.0","type":"ExecutionQueued","source":"https://jobs.example.com/queue",'
    '"id":"11111111-2222-4333-8444-555555555555","time":"2024-05-01T12:00:00Z",'
    '"subject":"7c9e6679-7425-40de-944b-e07fc1f90ae7",'
    '"datacontenttype":"application/json","data":{"execution_id":'
    '"7c9e6679-7425-40de-944b-e07fc1f90ae7","agent_id":"a0000000-0000-4000-8000-000000000001",'
    '"user_id":"b0000000-0000-4000-8000-000000000001","input_data":{"prompt":"Grüße, 世界"},'
    '"agent_name":"Researcher","user_name":null}}'
)


def test_a_failed_event_written_by_hand_in_another_language_parses() -> None:
    event = parse_event(HAND_WRITTEN_FAILED)

    assert isinstance(event, ExecutionFailed)
    assert event.id == UUID("0f8fad5b-d9cb-469f-a165-70867728950e")
    assert event.source == "urn:agent-worker:node-7"
    assert event.time == datetime(2024, 5, 1, 12, 0, 3, 123456, tzinfo=UTC)
    assert event.execution_id == UUID(EXECUTION)
    assert (event.data.agent_id, event.data.user_id) == (UUID(AGENT), UUID(USER))
    assert event.data.error_message == "TimeoutError: the tool did not answer in 30 s"
    assert event.data.output_data == {
        "steps": [{"tool": "search", "ok": True}, {"tool": "fetch", "ok": False}]
    }


def test_a_queued_event_written_by_hand_parses_from_text_and_utf8_bytes() -> None:
    from_text = parse_event(HAND_WRITTEN_QUEUED)
    from_bytes = parse_event(HAND_WRITTEN_QUEUED.encode("utf-8"))

    assert from_text == from_bytes
    assert isinstance(from_text, ExecutionQueued)
    assert from_text.time == datetime(2024, 5, 1, 12, 0, tzinfo=UTC)
    assert from_text.data.input_data == {"prompt": "Grüße, 世界"}
    assert (from_text.data.agent_name, from_text.data.user_name) == ("Researcher", None)


def test_event_from_dict_accepts_what_parse_event_accepts() -> None:
    value = envelope("ExecutionCancelled")

    assert event_from_dict(value) == parse(value)
