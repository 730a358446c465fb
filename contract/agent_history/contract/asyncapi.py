"""The wire contract as an AsyncAPI 3.0 document, generated from events.py's models.

`python -m agent_history.contract.asyncapi > docs/asyncapi.json` writes the committed copy;
tests/unit/test_asyncapi.py fails when it and this output differ. Every event type is two
messages, one per CloudEvents content mode of the Kafka binding: structured (the whole event as
the value) and binary (the attributes as ``ce_*`` headers, the data as the value).
"""

from __future__ import annotations

import json
from typing import Any, get_args

from pydantic import BaseModel
from pydantic.json_schema import models_json_schema

from agent_history.contract import events as ev
from agent_history.contract.events import Event, encode_binary, encode_event, event_from_dict

VERSION = "2.0.0"  # the contract's version: additive changes since 1 (docs/architecture.md)
# Every member of the Event union, in its order: a new event type is in the document by itself.
EVENTS: tuple[type[ev._Envelope], ...] = get_args(get_args(Event)[0])
_REF = "#/components/schemas/{model}"
_KEY = {"type": "string", "format": "uuid", "description": "The execution id (UTF-8)."}
_KAFKA = {"kafka": {"key": _KEY, "bindingVersion": "0.5.0"}}
_STRING = {"type": "string"}

DESCRIPTION = f"""\
The execution events of AI-agent runs. Each Kafka record on the event topic is one CloudEvents
1.0 event, keyed by its execution id (so one execution's events share a partition, in publish
order), in either content mode of the CloudEvents Kafka binding: **structured** (header
`{ev.CONTENT_TYPE_HEADER}: {ev.CLOUDEVENTS_JSON}`, the value is the whole event as JSON; what
the producer writes by default) or **binary** (each attribute in a `{ev.ATTRIBUTE_PREFIX}*`
header, `{ev.CONTENT_TYPE_HEADER}: application/json`, the value is the data alone). Readers
ignore attributes and fields they do not know; new fields are optional and new types are
additive. Records the projector cannot read go, whole, to the dead-letter topic with the reason.
The addresses are the default topic names (settings AGENT_HISTORY_TOPIC and _DLQ_TOPIC).
"""


def _event_schemas() -> dict[str, Any]:
    models: list[type[BaseModel]] = list(EVENTS)
    _, schema = models_json_schema([(m, "validation") for m in models], ref_template=_REF)
    defs: dict[str, Any] = schema["$defs"]
    for model in EVENTS:  # `type` has a default in Python; on the wire it is required
        defs[model.__name__]["required"].append("type")
    return dict(sorted(defs.items()))


def _binary_headers(envelope: dict[str, Any]) -> dict[str, Any]:
    """The headers of a binary-mode record: one ``ce_`` header per attribute but the data."""
    properties: dict[str, Any] = {}
    for name, schema in envelope["properties"].items():
        if name in ("data", "datacontenttype"):
            continue
        header = {k: v for k, v in schema.items() if k not in ("title", "default")}
        properties[f"{ev.ATTRIBUTE_PREFIX}{name}"] = header
    properties[ev.CONTENT_TYPE_HEADER] = {**_STRING, "const": "application/json"}
    required = [f"{ev.ATTRIBUTE_PREFIX}{n}" for n in envelope["required"] if n != "data"]
    return {"type": "object", "properties": properties, "required": required}


def _sample(model: type[ev._Envelope]) -> Event:
    """One event of each type with fixed values: the examples of the document."""
    run = "0b5c3f4e-6b0e-4a55-9a36-4c51d2d3a001"
    data: dict[str, Any] = {
        "execution_id": run,
        "agent_id": "6f1d2c3b-9a8e-4f70-8d6c-5b4a39281702",
        "user_id": "a3b2c1d0-e9f8-4a7b-8c6d-5e4f3a2b1c03",
    }
    extra: dict[str, dict[str, Any]] = {
        "ExecutionQueued": {"input_data": {"prompt": "Summarise the report"}},
        "ExecutionStarted": {"input_data": {"prompt": "Summarise the report"}, "model": "gpt-4o"},
        "ExecutionCompleted": {"output_data": {"summary": "…"}, "usage": {"input_tokens": 812}},
        "ExecutionFailed": {"error_message": "ValueError: no report"},
        "ExecutionCancelled": {"reason": "stopped by the user"},
        "ExecutionTimedOut": {
            "reason": "worker_lost",
            "last_seen_at": "2025-06-01T08:00:00Z",
            "since": "2025-06-01T08:00:00Z",
            "limit_ms": 60000,
        },
    }
    data |= extra.get(model.__name__, {})
    return event_from_dict(
        {
            "specversion": ev.SPEC_VERSION,
            "id": "5d0c6e2a-7f1b-4c8d-9e3f-2a1b0c9d8e04",
            "source": "agent-history/producer",
            "type": model.__name__,
            "subject": run,
            "time": "2025-06-01T08:01:00Z",
            "data": data,
        }
    )


def _messages(model: type[ev._Envelope], schemas: dict[str, Any]) -> dict[str, Any]:
    name = model.__name__
    summary = (model.__doc__ or "").strip() or f"{name}: an execution event."
    event = _sample(model)
    headers, value = encode_binary(event)
    data_ref = schemas[name]["properties"]["data"]
    structured = {
        "name": name,
        "title": f"{name} (structured)",
        "summary": summary,
        "contentType": ev.CLOUDEVENTS_JSON,
        "headers": {
            "type": "object",
            "properties": {ev.CONTENT_TYPE_HEADER: {**_STRING, "const": ev.CLOUDEVENTS_JSON}},
            "required": [ev.CONTENT_TYPE_HEADER],
        },
        "payload": {"$ref": _REF.format(model=name)},
        "bindings": _KAFKA,
        "examples": [{"headers": ev.record_headers(), "payload": json.loads(encode_event(event))}],
    }
    binary = {
        "name": name,
        "title": f"{name} (binary)",
        "summary": summary,
        "contentType": "application/json",
        "headers": _binary_headers(schemas[name]),
        "payload": data_ref,
        "bindings": _KAFKA,
        "examples": [{"headers": headers, "payload": json.loads(value)}],
    }
    return {f"{name}.structured": structured, f"{name}.binary": binary}


def _dead_letter() -> dict[str, Any]:
    said = {
        ev.DLQ_REASON: "Why the projector could not use the record.",
        ev.DLQ_ORIGIN_TOPIC: "The topic it was read from.",
        ev.DLQ_ORIGIN_PARTITION: "Its partition there (decimal).",
        ev.DLQ_ORIGIN_OFFSET: "Its offset there (decimal).",
        ev.DLQ_CONSUMER_GROUP: "The consumer group of the projector that set it aside.",
    }
    return {
        "name": "DeadLetter",
        "title": "A record the projector could not use",
        "summary": "The original record whole (key, value, headers), with these headers after "
        "the original ones; the value may be anything, even absent.",
        "headers": {
            "type": "object",
            "properties": {h: {**_STRING, "description": d} for h, d in said.items()},
            "required": list(said),
        },
        "payload": {},
        "bindings": {"kafka": {"key": {"type": "string"}, "bindingVersion": "0.5.0"}},
    }


def _channel(address: str, description: str, messages: list[str]) -> dict[str, Any]:
    return {
        "address": address,
        "description": description,
        "messages": {m: {"$ref": f"#/components/messages/{m}"} for m in messages},
        "bindings": {"kafka": {"topic": address, "bindingVersion": "0.5.0"}},
    }


def _operation(action: str, channel: str, summary: str, messages: list[str]) -> dict[str, Any]:
    refs = [{"$ref": f"#/channels/{channel}/messages/{m}"} for m in messages]
    return {
        "action": action,
        "channel": {"$ref": f"#/channels/{channel}"},
        "summary": summary,
        "messages": refs,
    }


def asyncapi_document() -> dict[str, Any]:
    """The AsyncAPI 3.0 document of the event topic and the dead-letter topic."""
    schemas = _event_schemas()
    messages: dict[str, Any] = {}
    for model in EVENTS:
        messages |= _messages(model, schemas)
    messages["DeadLetter"] = _dead_letter()
    events = [m for m in messages if m != "DeadLetter"]
    topic = ev.DEFAULT_TOPIC
    return {
        "asyncapi": "3.0.0",
        "info": {
            "title": "agent-history execution events",
            "version": VERSION,
            "description": DESCRIPTION,
        },
        "defaultContentType": ev.CLOUDEVENTS_JSON,
        "servers": {
            "kafka": {
                "host": "{bootstrap}",
                "protocol": "kafka",
                "description": "The Kafka cluster (AGENT_HISTORY_KAFKA_BOOTSTRAP_SERVERS).",
                "variables": {"bootstrap": {"default": "127.0.0.1:19092"}},
            }
        },
        "channels": {
            "executions": _channel(topic, "Every execution event, kept forever.", events),
            "deadLetters": _channel(
                f"{topic}{ev.DLQ_SUFFIX}", "Records the projector set aside.", ["DeadLetter"]
            ),
        },
        "operations": {
            "recordExecution": _operation(
                "send", "executions", "Agent workers (and the watchdog) record events.", events
            ),
            "projectExecutions": _operation(
                "receive", "executions", "The projector folds them into the read model.", events
            ),
            "deadLetter": _operation(
                "send", "deadLetters", "The projector sets unusable records aside.", ["DeadLetter"]
            ),
        },
        "components": {"messages": messages, "schemas": schemas},
    }


def asyncapi_json() -> str:
    """The document as the committed docs/asyncapi.json holds it."""
    return json.dumps(asyncapi_document(), indent=2, ensure_ascii=False) + "\n"


if __name__ == "__main__":
    print(asyncapi_json(), end="")
