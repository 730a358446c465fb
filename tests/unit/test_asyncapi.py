"""The AsyncAPI document: the committed copy is the code's, and it describes the real records."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, get_args

import jsonschema_rs
import pytest

from agent_history.contract.asyncapi import EVENTS, asyncapi_document, asyncapi_json
from agent_history.contract.events import Event, decode_record, wire_headers

COMMITTED = Path(__file__).parents[2] / "docs" / "asyncapi.json"
REGENERATE = "python -m agent_history.contract.asyncapi > docs/asyncapi.json"
DOCUMENT = asyncapi_document()
MESSAGES: dict[str, Any] = DOCUMENT["components"]["messages"]


def test_the_committed_document_is_the_code_s() -> None:
    assert COMMITTED.read_text() == asyncapi_json(), (
        f"docs/asyncapi.json differs from the contract: run `.venv/bin/{REGENERATE}`"
    )


def test_every_event_type_has_a_message_in_both_content_modes() -> None:
    names = {model.__name__ for model in get_args(get_args(Event)[0])}
    assert {model.__name__ for model in EVENTS} == names
    wanted = {f"{name}.{mode}" for name in names for mode in ("structured", "binary")}
    assert set(MESSAGES) == wanted | {"DeadLetter"}
    events = DOCUMENT["channels"]["executions"]["messages"]
    assert set(events) == wanted
    assert DOCUMENT["channels"]["executions"]["address"] == "agent-executions"
    assert DOCUMENT["channels"]["deadLetters"]["address"] == "agent-executions.dlq"


def _validator(schema: dict[str, Any]) -> Any:
    """A draft-07 validator (AsyncAPI 3.0's schema dialect) resolving the document's refs."""
    root = {"allOf": [schema], "components": DOCUMENT["components"]}
    return jsonschema_rs.Draft7Validator(root)


@pytest.mark.parametrize("name", sorted(set(MESSAGES) - {"DeadLetter"}))
def test_each_example_is_a_record_the_reader_takes_and_its_schema_accepts(name: str) -> None:
    message = MESSAGES[name]
    (example,) = message["examples"]
    headers, payload = example["headers"], example["payload"]
    _validator(message["payload"]).validate(payload)
    _validator(message["headers"]).validate(headers)
    event = decode_record(wire_headers(headers), json.dumps(payload).encode())
    assert event.type == message["name"]


@pytest.mark.parametrize("name", sorted(set(MESSAGES) - {"DeadLetter"}))
def test_a_record_the_reader_rejects_is_rejected_by_the_schema_too(name: str) -> None:
    message = MESSAGES[name]
    payload = dict(message["examples"][0]["payload"])
    del payload["execution_id" if name.endswith(".binary") else "id"]
    assert not _validator(message["payload"]).is_valid(payload)
