"""Poison records: every invalid record goes to the dead-letter topic, whole and with a reason,
counted exactly once; the valid records around it are projected; the projection never stalls."""

from __future__ import annotations

import json
import random
import uuid
from dataclasses import dataclass
from typing import Any

import pytest
from aiokafka import AIOKafkaConsumer
from sqlalchemy.ext.asyncio import AsyncEngine

from agent_history.contract.events import event_from_dict
from agent_history.projector.settings import ProjectorSettings
from tests.faults_support import (
    Outcome,
    Stream,
    checkpoints,
    compare,
    dead_lettered,
    generate_stream,
    send,
    stored_rows,
    wanted_offsets,
)
from tests.support import caught_up, eventually

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("running_projector")]

MAX_EVENT_BYTES = 4096
HEADERS = [("content-type", b"application/cloudevents+json")]


@pytest.fixture
def projector_settings(projector_settings: ProjectorSettings) -> ProjectorSettings:
    """A small size limit, and small batches so that poison and valid records share batches."""
    return projector_settings.model_copy(
        update={"max_event_bytes": MAX_EVENT_BYTES, "batch_max_records": 16}
    )


def envelope() -> dict[str, Any]:
    """A valid event as any client would write it from the README; tests then break it."""
    eid = str(uuid.uuid4())
    data: dict[str, Any] = {
        "execution_id": eid,
        "agent_id": str(uuid.uuid4()),
        "user_id": str(uuid.uuid4()),
        "input_data": {"q": 1},
    }
    return {
        "specversion": "1.0",
        "id": str(uuid.uuid4()),
        "source": "urn:poison",
        "type": "ExecutionStarted",
        "subject": eid,
        "time": "2025-06-01T08:00:00Z",
        "data": data,
    }


def encoded(event: dict[str, Any]) -> bytes:
    return json.dumps(event).encode()


def broken(change: str) -> dict[str, Any]:
    """A valid event with one thing wrong with it."""
    event = envelope()
    match change:
        case "unknown type":
            event["type"] = "ExecutionExploded"
        case "missing input_data":
            del event["data"]["input_data"]
        case "agent_id a number":
            event["data"]["agent_id"] = 42
        case "time not a time":
            event["time"] = "yesterday"
        case "input_data a list":
            event["data"]["input_data"] = [1, 2]
        case "subject not the execution":
            event["subject"] = str(uuid.uuid4())
        case "old specversion":
            event["specversion"] = "0.3"
        case "oversized":
            event["data"]["input_data"] = {"blob": "x" * MAX_EVENT_BYTES}
        case "NUL in text":
            event["data"]["input_data"] = {"s": "a\u0000b"}
    return event


# (case, value, words the dead-letter reason must contain); the key is the execution id.
INVALID: list[tuple[str, bytes | None, list[str]]] = [
    ("bad JSON", b'{"specversion": "1.0", "id": ', ["Invalid JSON"]),
    ("empty value", b"", ["Invalid JSON"]),
    ("tombstone", None, ["tombstone"]),
    ("not UTF-8", b'\xff\xfe{"a": 1}', ["JSON"]),
    ("not an object", b"[1, 2]", ["object"]),
    ("unknown type", encoded(broken("unknown type")), ["unknown type: ExecutionExploded"]),
    ("missing field", encoded(broken("missing input_data")), ["input_data", "required"]),
    ("wrong type: number for a UUID", encoded(broken("agent_id a number")), ["agent_id"]),
    ("wrong type: bad time", encoded(broken("time not a time")), ["time"]),
    ("wrong type: list for an object", encoded(broken("input_data a list")), ["input_data"]),
    ("subject mismatch", encoded(broken("subject not the execution")), ["subject"]),
    ("unknown specversion", encoded(broken("old specversion")), ["specversion"]),
    ("oversized", encoded(broken("oversized")), [f"over the {MAX_EVENT_BYTES} limit"]),
    ("NUL", encoded(broken("NUL in text")), ["NUL"]),
]


def binary(change: str) -> tuple[bytes, list[tuple[str, bytes]]]:
    """A valid event in binary content mode (value and headers) with one thing wrong with it."""
    event = envelope()
    data = event.pop("data")
    headers = {f"ce_{name}": str(value) for name, value in event.items()}
    headers["content-type"] = "application/json"
    value = encoded(data)
    match change:
        case "missing ce_id":
            del headers["ce_id"]
        case "unknown ce_type":
            headers["ce_type"] = "ExecutionExploded"
        case "data not JSON":
            value = b"{'q': 1}"
        case "text/plain data":
            headers["content-type"] = "text/plain"
    return value, [(name, text.encode()) for name, text in headers.items()]


# (case, value, words the dead-letter reason must contain, headers)
INVALID_BINARY: list[tuple[str, bytes, list[str], list[tuple[str, bytes]]]] = [
    (f"binary: {case}", value, words, headers)
    for case, words in [
        ("missing ce_id", ["header ce_id: Field required"]),
        ("unknown ce_type", ["unknown type: ExecutionExploded"]),
        ("data not JSON", ["data: Invalid JSON"]),
        ("text/plain data", ["header content-type"]),
    ]
    for value, headers in [binary(case)]
]


async def dead_letters(bootstrap: str, topic: str, count: int) -> list[Any]:
    """Read the dead-letter topic from the start until ``count`` records are there."""
    consumer = AIOKafkaConsumer(
        topic, bootstrap_servers=bootstrap, auto_offset_reset="earliest", enable_auto_commit=False
    )
    await consumer.start()
    seen: list[Any] = []

    async def more() -> list[Any]:
        for records in (await consumer.getmany(timeout_ms=200)).values():
            seen.extend(records)
        return seen

    try:
        return await eventually(more, lambda got: len(got) >= count, what=f"{count} dead letters")
    finally:
        await consumer.stop()


@dataclass(frozen=True)
class Sent:
    """An invalid record as it was sent, and what its dead-letter reason must say."""

    case: str
    key: bytes
    value: bytes | None
    headers: list[tuple[str, bytes]]
    words: list[str]


async def test_invalid_records_are_dead_lettered_and_valid_ones_projected(
    projector_settings: ProjectorSettings, db_engine: AsyncEngine, producer: Any
) -> None:
    s = projector_settings
    rng = random.Random(7)
    stream = generate_stream(rng, 40)
    half = len(stream.events) // 2
    metas = await send(producer, s.topic, stream.events[:half])
    invalid: dict[tuple[int, int], Sent] = {}
    mismatched = encoded(envelope())
    cases = [
        *((case, value, words, HEADERS) for case, value, words in INVALID),
        ("key mismatch", mismatched, ["key does not match"], HEADERS),
        *INVALID_BINARY,
    ]
    for case, value, words, case_headers in cases:
        # Keyed like a valid execution, so that it lands amid valid records (but one).
        execution = rng.choice(stream.events).data.execution_id
        key = str(uuid.uuid4() if case == "key mismatch" else execution).encode()
        headers = [*case_headers, ("x-case", case.encode())]
        meta = await producer.send_and_wait(s.topic, value, key=key, headers=headers)
        invalid[(meta.partition, meta.offset)] = Sent(case, key, value, headers, words)
        metas.append(meta)
    metas += await send(producer, s.topic, stream.events[half:])

    await caught_up(db_engine, s.consumer_group, s.topic, metas)
    outcome = Outcome(events=len(stream.events))
    await compare(db_engine, s, stream, outcome)
    assert not outcome.mismatches, "\n".join([outcome.summary(), *outcome.mismatches[:30]])
    assert outcome.dead_lettered == len(invalid), "each invalid record counted exactly once"

    dead = await dead_letters(s.kafka_bootstrap_servers, s.dlq_topic, len(invalid))
    problems = []
    for record in dead:
        info = dict(record.headers)
        where = (int(info["dlq-original-partition"]), int(info["dlq-original-offset"]))
        sent = invalid.pop(where, None)
        if sent is None:
            problems.append(f"dead-lettered twice, or valid: {where} {record.value!r}")
            continue
        reason = info["dlq-reason"].decode()
        if [w for w in sent.words if w not in reason]:
            problems.append(f"{sent.case}: reason {reason!r} does not say {sent.words}")
        if (record.key, record.value) != (sent.key, sent.value):
            problems.append(f"{sent.case}: key/value changed: {record.key!r} {record.value!r}")
        if list(record.headers[: len(sent.headers)]) != sent.headers:
            problems.append(f"{sent.case}: original headers lost: {record.headers}")
        if info["dlq-original-topic"] != s.topic.encode():
            problems.append(f"{sent.case}: dlq-original-topic {info['dlq-original-topic']!r}")
    problems += [f"{sent.case}: not in the dead-letter topic" for sent in invalid.values()]
    assert not problems, "\n".join(problems)
    assert outcome.dlq_records == len(dead), "no record dead-lettered twice"


# Values the contract accepts and the writer cannot store: unless the projector sets such a
# record aside, every attempt at its batch fails and the partition stops there for good.
UNSTORABLE = {
    "integer beyond 64 bits": ("input_data", {"n": 2**70}),
    "time before year 1 in UTC": ("time", "0001-01-01T00:30:00+01:00"),
    "time after year 9999 in UTC": ("time", "9999-12-31T23:30:00-01:00"),
}


@pytest.mark.parametrize("case", list(UNSTORABLE))
async def test_a_record_the_store_cannot_hold_does_not_stall_its_partition(
    case: str, projector_settings: ProjectorSettings, db_engine: AsyncEngine, producer: Any
) -> None:
    s = projector_settings
    odd = envelope()
    where, value = UNSTORABLE[case]
    if where == "time":
        odd["time"] = value
    else:
        odd["data"]["input_data"] = value
    after = envelope()
    sent = [
        await producer.send_and_wait(s.topic, encoded(e), key=e["subject"].encode(), partition=0)
        for e in (odd, after)
    ]
    wanted = wanted_offsets(sent)
    await eventually(
        lambda: checkpoints(db_engine, s),
        lambda seen: all(seen.get(p, 0) >= o for p, o in wanted.items()),
        what=f"partition 0 to move past a record with {case} (projected or dead-lettered)",
        within=15.0,
    )


async def test_text_with_an_escaped_backslash_before_u0000_is_projected(
    projector_settings: ProjectorSettings, db_engine: AsyncEngine, producer: Any
) -> None:
    """The text ``\\u0000`` (a backslash, then "u0000") holds no NUL and can be stored."""
    s = projector_settings
    event = envelope()
    event["data"]["input_data"] = {"raw": '{"a": "\\u0000"}'}
    meta = await producer.send_and_wait(s.topic, encoded(event), key=event["subject"].encode())
    await caught_up(db_engine, s.consumer_group, s.topic, [meta])
    parsed = event_from_dict(event)
    stream = Stream([parsed], [parsed.data.agent_id], [parsed.data.user_id])
    outcome = Outcome()
    await compare(db_engine, s, stream, outcome)
    assert outcome.dead_lettered == 0, "a valid event was dead-lettered as containing NUL"
    assert not outcome.mismatches, outcome.mismatches


@pytest.mark.parametrize("number", ["NaN", "Infinity", "-Infinity"])
async def test_numbers_json_does_not_have_are_dead_lettered(
    number: str, projector_settings: ProjectorSettings, db_engine: AsyncEngine, producer: Any
) -> None:
    """RFC 8259 has no NaN or Infinity: such a value is not JSON, so not an event."""
    s = projector_settings
    event = envelope()
    value = encoded(event).replace(b'{"q": 1}', b'{"q": ' + number.encode() + b"}")
    meta = await producer.send_and_wait(s.topic, value, key=event["subject"].encode())
    await caught_up(db_engine, s.consumer_group, s.topic, [meta])
    projected = await stored_rows(db_engine, [uuid.UUID(event["data"]["agent_id"])])
    assert await dead_lettered(db_engine, s) == 1, f"projected instead: {projected}"
    (dead,) = await dead_letters(s.kafka_bootstrap_servers, s.dlq_topic, 1)
    assert dead.value == value
