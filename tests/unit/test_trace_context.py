"""The CloudEvents distributed-tracing extension on the envelope: traceparent and tracestate,
optional, in both content modes; invalid values read as absent, never as poison."""

from __future__ import annotations

import json
from typing import Any
from uuid import uuid4

import pytest

from agent_history.contract.events import (
    decode_record,
    encode_binary,
    encode_event,
    event_from_dict,
    trace_id_of,
    wire_headers,
)

TRACEPARENT = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"


def heartbeat(**attributes: Any) -> dict[str, Any]:
    execution = str(uuid4())
    return {
        "specversion": "1.0",
        "id": str(uuid4()),
        "source": "tests",
        "type": "ExecutionHeartbeat",
        "subject": execution,
        "time": "2025-06-01T08:00:05Z",
        "data": {"execution_id": execution, "agent_id": str(uuid4()), "user_id": str(uuid4())},
        **attributes,
    }


def test_a_traced_event_carries_its_context_in_both_modes() -> None:
    event = event_from_dict(heartbeat(traceparent=TRACEPARENT, tracestate="vendor=x"))

    assert json.loads(encode_event(event))["traceparent"] == TRACEPARENT
    headers, value = encode_binary(event)
    assert (headers["ce_traceparent"], headers["ce_tracestate"]) == (TRACEPARENT, "vendor=x")
    assert decode_record(wire_headers(headers), value) == event
    assert trace_id_of(event.traceparent) == "4bf92f3577b34da6a3ce929d0e0e4736"


def test_an_untraced_event_is_encoded_without_them() -> None:
    event = event_from_dict(heartbeat())

    assert b"trace" not in encode_event(event)
    assert not [name for name in encode_binary(event)[0] if "trace" in name]


@pytest.mark.parametrize(
    "traceparent",
    [
        "",
        "garbage",
        42,
        None,
        TRACEPARENT.upper(),
        TRACEPARENT + "-extra",  # version 00 has exactly four fields
        "ff" + TRACEPARENT[2:],  # version ff is invalid
        "00-00000000000000000000000000000000-00f067aa0ba902b7-01",  # all-zero trace id
        "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",  # all-zero parent id
        "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01\u0000",
    ],
)
def test_an_invalid_traceparent_reads_as_absent_with_its_tracestate(traceparent: object) -> None:
    event = event_from_dict(heartbeat(traceparent=traceparent, tracestate="vendor=x"))

    assert (event.traceparent, event.tracestate) == (None, None)
    assert event == event_from_dict(heartbeat() | {"id": str(event.id)} | _same_ids(event))


def test_a_later_version_may_append_fields() -> None:
    later = "01" + TRACEPARENT[2:] + "-what-comes-next"
    assert event_from_dict(heartbeat(traceparent=later)).traceparent == later


def test_an_invalid_traceparent_in_binary_mode_is_no_poison() -> None:
    event = event_from_dict(heartbeat())
    headers, value = encode_binary(event)
    headers |= {"ce_traceparent": "not one", "ce_tracestate": "x" * 1000}

    assert decode_record(wire_headers(headers), value) == event


def test_an_unusable_tracestate_reads_as_absent() -> None:
    for tracestate in ("", "x" * 513, "a=\u00e9", "a=b\u0000", 7):
        event = event_from_dict(heartbeat(traceparent=TRACEPARENT, tracestate=tracestate))
        assert (event.traceparent, event.tracestate) == (TRACEPARENT, None)


def _same_ids(event: Any) -> dict[str, Any]:
    data = event.data
    ids = {k: str(getattr(data, k)) for k in ("execution_id", "agent_id", "user_id")}
    return {"subject": ids["execution_id"], "data": ids}
