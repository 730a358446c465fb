"""The producer's two ways of writing a record read back as the same event."""

from __future__ import annotations

from uuid import uuid4

import pytest

from agent_history.contract.events import (
    ExecutionStarted,
    RunRequestData,
    decode_record,
    encode_event,
)
from agent_history.producer.envelope import stamp
from agent_history.producer.kafka import CONTENT_MODES


@pytest.mark.parametrize("mode", sorted(CONTENT_MODES))
def test_each_content_mode_decodes_to_the_spooled_event(mode: str) -> None:
    data = RunRequestData(
        execution_id=uuid4(),
        agent_id=uuid4(),
        user_id=uuid4(),
        input_data={"prompt": "hi", "n": [1, 2.5, None]},
        agent_name="Researcher",
        timeout_ms=90_000,
    )
    event = stamp(ExecutionStarted, data, "urn:test")
    headers, value = CONTENT_MODES[mode](encode_event(event))
    assert decode_record(headers, value) == event
    content_type = dict(headers)["content-type"].decode()
    expected = "application/cloudevents+json" if mode == "structured" else "application/json"
    assert content_type == expected
    assert any(name.startswith("ce_") for name, _ in headers) == (mode == "binary")
