"""The timed loops of bench/producer.py: runs through track_execution and through a plain
aiokafka producer, and events recorded back to back."""

from __future__ import annotations

import asyncio
import importlib
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from aiokafka import AIOKafkaProducer
from pydantic import JsonValue

from agent_history.contract.events import (
    CompletedData,
    ExecutionCompleted,
    ExecutionStarted,
    RunRequestData,
    encode_event,
    record_headers,
    record_key,
    wire_headers,
)
from agent_history.producer import Publisher, track_execution

GOAL_P99_MS = 0.2
GOAL_RATE = 50_000
AGENT, USER = uuid.uuid4(), uuid.uuid4()
PROMPT: dict[str, JsonValue] = {
    "prompt": "Summarise the quarterly report in five bullets.",
    "max_tokens": 800,
}
ANSWER: JsonValue = {
    "answer": "Revenue grew 12 %; costs fell; two new markets; churn flat; outlook up."
}
HEADERS = wire_headers(record_headers())


def quantiles(seconds: list[float]) -> tuple[float, float, float]:
    """p50, p99 and max, in ms."""
    ordered = sorted(seconds)
    pick = [ordered[int(q * (len(ordered) - 1))] for q in (0.5, 0.99)]
    return pick[0] * 1e3, pick[1] * 1e3, ordered[-1] * 1e3


async def added_by_tracking(publisher: Publisher, runs: int, pace: float = 0.0) -> list[float]:
    """Seconds that ``async with track_execution(...)`` adds to each run (make, enter, exit)."""
    added = []
    for n in range(runs + runs // 10):
        began = time.perf_counter()
        tracking = track_execution(AGENT, USER, {**PROMPT, "n": n}, publisher=publisher)
        async with tracking as run:
            entered = time.perf_counter()
            run.output = ANSWER
            leaving = time.perf_counter()
        added.append(entered - began + time.perf_counter() - leaving)
        await asyncio.sleep(pace)  # the shipper (and anything else) runs between runs
    return added[runs // 10 :]


def added_by_tracking_sync(publisher: Publisher, runs: int) -> list[float]:
    """The same with ``with track_execution(...)``, in this thread."""
    added = []
    for n in range(runs + runs // 10):
        began = time.perf_counter()
        with track_execution(AGENT, USER, {**PROMPT, "n": n}, publisher=publisher) as run:
            entered = time.perf_counter()
            run.output = ANSWER
            leaving = time.perf_counter()
        added.append(entered - began + time.perf_counter() - leaving)
        time.sleep(0)
    return added[runs // 10 :]


def _envelope(data: Any) -> dict[str, Any]:
    return {
        "specversion": "1.0",
        "id": uuid.uuid4(),
        "source": "bench/producer",
        "subject": data.execution_id,
        "time": datetime.now(UTC),
        "data": data,
    }


async def _send(producer: AIOKafkaProducer, topic: str, value: bytes, key: bytes) -> Any:
    return await producer.send(topic, value, key=key, headers=HEADERS)


async def added_by_aiokafka(
    producer: AIOKafkaProducer, topic: str, runs: int, pace: float = 0.0
) -> list[float]:
    """What publishing Started and Completed straight to aiokafka adds, without waiting."""
    added = []
    for n in range(runs + runs // 10):
        began = time.perf_counter()
        ids = {"execution_id": uuid.uuid4(), "agent_id": AGENT, "user_id": USER}
        started = RunRequestData(**ids, input_data={**PROMPT, "n": n})
        event = ExecutionStarted.model_validate(_envelope(started))
        await _send(producer, topic, encode_event(event), record_key(event.execution_id))
        entered = time.perf_counter()
        ended = ExecutionCompleted.model_validate(
            _envelope(CompletedData(**ids, output_data=ANSWER))
        )
        await _send(producer, topic, encode_event(ended), record_key(ended.execution_id))
        added.append(entered - began + time.perf_counter() - entered)
        await asyncio.sleep(pace)
    return added[runs // 10 :]


def _requests(events: int) -> list[RunRequestData]:
    return [
        RunRequestData(
            execution_id=uuid.uuid4(), agent_id=AGENT, user_id=USER, input_data={**PROMPT, "n": n}
        )
        for n in range(events)
    ]


async def record_with_aiokafka(
    producer: AIOKafkaProducer, topic: str, events: int
) -> tuple[float, float]:
    """Seconds to build, encode and send ``events`` Started events; and until acknowledged."""
    requests = _requests(events)
    began = time.perf_counter()
    for data in requests:
        event = ExecutionStarted.model_validate(_envelope(data))
        await _send(producer, topic, encode_event(event), record_key(data.execution_id))
    sent = time.perf_counter() - began
    await producer.flush()
    return sent, time.perf_counter() - began


async def record_with_publisher(
    publisher: Publisher, events: int, profile: Path | None
) -> tuple[float, float]:
    """Seconds to record ``events`` Started events; and until the broker acknowledged them."""
    requests = _requests(events)
    profiler = importlib.import_module("pyinstrument").Profiler() if profile else None
    if profiler is not None:
        profiler.start()
    began = time.perf_counter()
    for data in requests:
        await publisher.publish_started(data)
    recorded = time.perf_counter() - began
    if profiler is not None and profile is not None:
        profiler.stop()
        text = profiler.output_text(unicode=True, show_all=False)
        await asyncio.to_thread(profile.write_text, text)
    flushed = await publisher.flush(600)
    assert flushed, "the broker did not acknowledge every event within 10 minutes"
    return recorded, time.perf_counter() - began
