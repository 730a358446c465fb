"""The two content modes of the CloudEvents Kafka binding: which one a record is in, and that
both read the same events and reject the same mistakes with a reason naming the header."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

import pytest

from agent_history.contract.events import (
    CLOUDEVENTS_JSON,
    EventType,
    InvalidEvent,
    decode_record,
    encode_binary,
    encode_event,
    event_from_dict,
    record_headers,
    wire_headers,
)
from tests.unit.test_events import EVENT_ID, EXECUTION, FULL_DATA, MODELS, envelope

Headers = Sequence[tuple[str, bytes | None]]


def binary(kind: EventType = "ExecutionStarted") -> tuple[dict[str, str], dict[str, Any]]:
    """A valid binary-mode record written by hand: its ce_ headers and its data."""
    value = envelope(kind)
    data = value.pop("data")
    headers = {f"ce_{name}": text for name, text in value.items() if name != "datacontenttype"}
    return headers | {"content-type": "application/json"}, data


def decoded(headers: Mapping[str, str], data: Any) -> Any:
    return decode_record(wire_headers(headers), json.dumps(data).encode())


def reason(headers: Headers, value: bytes) -> str:
    with pytest.raises(InvalidEvent) as caught:
        decode_record(headers, value)
    return str(caught.value)


@pytest.mark.parametrize("kind", list(FULL_DATA))
def test_both_modes_encode_every_type_and_decode_to_the_same_event(kind: EventType) -> None:
    event = event_from_dict(envelope(kind))
    headers, value = encode_binary(event)

    from_binary = decode_record(wire_headers(headers), value)
    from_structured = decode_record(wire_headers(record_headers()), encode_event(event))

    assert type(from_binary) is MODELS[kind]
    assert from_binary == from_structured == event


def test_binary_mode_puts_each_attribute_in_a_ce_header_and_the_data_in_the_value() -> None:
    event = event_from_dict(envelope("ExecutionCancelled"))

    headers, value = encode_binary(event)

    assert headers == {
        "ce_specversion": "1.0",
        "ce_id": EVENT_ID,
        "ce_source": "urn:agent-worker:1",
        "ce_subject": EXECUTION,
        "ce_time": "2024-05-01T12:00:00.250000Z",
        "ce_type": "ExecutionCancelled",
        "content-type": "application/json",
    }
    assert json.loads(value) == envelope("ExecutionCancelled")["data"]


def test_a_binary_record_written_by_hand_decodes() -> None:
    headers, data = binary("ExecutionQueued")

    assert decoded(headers, data) == event_from_dict(envelope("ExecutionQueued"))


@pytest.mark.parametrize(
    "content_type",
    [
        CLOUDEVENTS_JSON,
        "application/cloudevents+json; charset=utf-8",
        "Application/CloudEvents+JSON",
    ],
)
def test_a_cloudevents_content_type_means_structured_whatever_ce_headers_say(
    content_type: str,
) -> None:
    headers, _ = binary("ExecutionFailed")  # attributes of another event: ignored
    value = encode_event(event_from_dict(envelope("ExecutionStarted")))

    event = decode_record(wire_headers(headers | {"content-type": content_type}), value)

    assert event == event_from_dict(envelope("ExecutionStarted"))


def test_a_record_without_content_type_or_ce_headers_is_structured_as_before() -> None:
    value = encode_event(event_from_dict(envelope("ExecutionCompleted")))

    assert decode_record([], value) == decode_record([("x-trace", b"1")], value)
    assert decode_record([], value) == event_from_dict(envelope("ExecutionCompleted"))


def test_a_binary_record_may_leave_out_content_type_which_means_json() -> None:
    headers, data = binary()
    del headers["content-type"]

    assert decoded(headers, data) == event_from_dict(envelope("ExecutionStarted"))


def test_binary_readers_ignore_unknown_headers_extensions_and_data_fields() -> None:
    headers, data = binary("ExecutionFailed")
    plain = decoded(headers, data)
    # traceparent is known since the contract took the distributed-tracing extension.
    headers |= {"ce_sampledrate": "10", "ce_partitionkey": EXECUTION, "x-origin": "kcat"}
    data |= {"retry_count": 3, "model": {"name": "some-llm"}}

    assert decoded(headers, data) == plain


def test_a_header_without_a_value_counts_as_absent() -> None:
    headers, data = binary()
    value = json.dumps(data).encode()
    written = [(name, None if name == "ce_id" else text) for name, text in wire_headers(headers)]

    assert reason(written, value) == "invalid event: header ce_id: Field required"


def test_an_unknown_type_has_a_reason_of_its_own_in_both_modes() -> None:
    headers, data = binary()
    structured = envelope("ExecutionStarted") | {"type": "ExecutionPaused"}

    assert reason(
        wire_headers(headers | {"ce_type": "ExecutionPaused"}), json.dumps(data).encode()
    ) == ("unknown type: ExecutionPaused")
    assert reason(wire_headers(record_headers()), json.dumps(structured).encode()) == (
        "unknown type: ExecutionPaused"
    )


@pytest.mark.parametrize("attribute", ["specversion", "id", "source", "type", "subject", "time"])
def test_a_missing_ce_header_is_named_in_the_reason(attribute: str) -> None:
    headers, data = binary()
    del headers[f"ce_{attribute}"]

    assert reason(wire_headers(headers), json.dumps(data).encode()) == (
        f"invalid event: header ce_{attribute}: Field required"
    )


def test_a_missing_type_in_structured_mode_is_named_too() -> None:
    value = envelope("ExecutionStarted")
    del value["type"]

    assert reason([], json.dumps(value).encode()) == "invalid event: type: Field required"


@pytest.mark.parametrize(
    ("change", "words"),
    [
        ({"content-type": "text/plain"}, "invalid event: header content-type: Input should be"),
        ({"ce_time": "2024-05-01T12:00:00"}, "invalid event: header ce_time: Input should have"),
        ({"ce_id": "not-a-uuid"}, "invalid event: header ce_id: Input should be a valid UUID"),
        ({"ce_specversion": "0.3"}, "invalid event: header ce_specversion: Input should be '1.0'"),
        ({"ce_source": ""}, "invalid event: header ce_source: String should have at least"),
        (
            {"ce_subject": "7c9e6679-7425-40de-944b-e07fc1f90ae8"},
            "invalid event: event: Value error, subject must equal data.execution_id",
        ),
    ],
)
def test_a_malformed_ce_header_is_named_in_the_reason(change: dict[str, str], words: str) -> None:
    headers, data = binary()

    assert reason(wire_headers(headers | change), json.dumps(data).encode()).startswith(words)


def test_a_header_that_is_not_utf8_is_named_in_the_reason() -> None:
    headers, data = binary()
    written = [*wire_headers(headers), ("ce_source", b"\xff\xfe")]

    assert reason(written, json.dumps(data).encode()) == (
        "invalid event: header ce_source is not UTF-8"
    )


@pytest.mark.parametrize(
    ("value", "words"),
    [
        (b"{not json", "invalid event: data: Invalid JSON: "),
        (b"", "invalid event: data: Invalid JSON: "),
        (b'\xff{"a": 1}', "invalid event: data: Invalid JSON: "),
        (b"[1, 2]", "invalid event: data: Input should be a valid dictionary"),
    ],
)
def test_data_that_is_not_a_json_object_is_poison(value: bytes, words: str) -> None:
    headers, _ = binary()

    assert reason(wire_headers(headers), value).startswith(words)


def test_a_missing_data_field_is_named_by_its_place_in_the_data() -> None:
    headers, data = binary("ExecutionFailed")
    del data["error_message"]

    assert reason(wire_headers(headers), json.dumps(data).encode()) == (
        "invalid event: data.error_message: Field required"
    )
