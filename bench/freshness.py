"""Freshness: from publishing a terminal event to its row being served by the API, under load.

A steady stream of executions (Queued, Started 50 ms later, the end 300 ms later) is published
the way the producer publishes (idempotent, acks from all, the producer's linger). Every
``sample_every``-th terminal event is followed: its clock starts just before it is handed to
the producer and stops when a GET of its execution through the API, over HTTP, first shows the
terminal status (the poll's response time is included, so this is what a client sees).
"""

from __future__ import annotations

import asyncio
import heapq
import statistics
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import asyncpg
import httpx
import orjson
from aiokafka import AIOKafkaProducer

from agent_history.producer.settings import ProducerSettings
from bench.workload import HEADERS

_TICK = 0.005
_TERMINAL = {"completed", "failed", "cancelled"}


@dataclass(frozen=True)
class Freshness:
    p50_ms: float
    p99_ms: float
    max_ms: float
    samples: int
    rate: float  # events/s actually published
    through: str  # "API" or how the rows were read instead


def _event(kind: str, eid: str, ids: dict[str, str], extra: dict[str, Any]) -> bytes:
    return orjson.dumps(
        {
            "specversion": "1.0",
            "id": str(uuid.uuid4()),
            "source": "urn:worker:bench",
            "type": kind,
            "subject": eid,
            "time": datetime.now(UTC).isoformat(),
            "datacontenttype": "application/json",
            "data": {**ids, **extra},
        }
    )


class _Probe:
    """Follows executions until their row shows a terminal status; keeps the latencies."""

    def __init__(self, api: str, token: str | None, dsn: str | None) -> None:
        """Through the API with ``token``; straight from the database when ``dsn`` is given."""
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        self.client = httpx.AsyncClient(base_url=api, headers=headers, timeout=5.0)
        self.dsn = dsn
        self.pool: asyncpg.Pool | None = None
        self.latencies: list[float] = []

    async def status(self, execution_id: str) -> str | None:
        if self.pool is not None:
            sql = "SELECT status FROM agent_executions WHERE id = $1"
            found: str | None = await self.pool.fetchval(sql, uuid.UUID(execution_id))
            return found
        response = await self.client.get(f"/api/v1/agent-studio/executions/{execution_id}")
        if response.status_code == 404:
            return None
        if response.status_code != 200:
            raise RuntimeError(f"the API answered {response.status_code}: {response.text}")
        found = response.json()["status"]
        return found

    async def follow(
        self, execution_id: str, published: float, poll: float = 0.002, within: float = 10.0
    ) -> None:
        deadline = published + within
        while time.perf_counter() < deadline:
            if await self.status(execution_id) in _TERMINAL:
                self.latencies.append(time.perf_counter() - published)
                return
            await asyncio.sleep(poll)
        self.latencies.append(float("inf"))

    async def __aenter__(self) -> _Probe:
        if self.dsn is not None:
            self.pool = await asyncpg.create_pool(self.dsn, min_size=4, max_size=8)
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.client.aclose()
        if self.pool is not None:
            await self.pool.close()


async def _first_visible(producer: AIOKafkaProducer, probe: _Probe, topic: str) -> None:
    """Wait until the projector and the API are both up (one execution seen end to end)."""
    eid = str(uuid.uuid4())
    ids = {"execution_id": eid, "agent_id": str(uuid.uuid4()), "user_id": str(uuid.uuid4())}
    value = _event("ExecutionCompleted", eid, ids, {"output_data": 0})
    published = time.perf_counter()
    await (await producer.send(topic, value, key=eid.encode(), headers=HEADERS))
    await probe.follow(eid, published, poll=0.05, within=120.0)
    if probe.latencies.pop() == float("inf"):
        raise RuntimeError("no execution became visible within 120 s: projector or API not up")


async def measure(
    bootstrap: str,
    topic: str,
    api: str,
    token: str | None,
    dsn: str | None = None,
    rate: float = 2000.0,
    seconds: float = 20.0,
    warmup: float = 3.0,
    sample_every: int = 25,
) -> Freshness:
    """Publish ``rate`` events/s for ``warmup + seconds`` and follow the sampled terminals."""
    producer = AIOKafkaProducer(
        bootstrap_servers=bootstrap,
        enable_idempotence=True,
        linger_ms=ProducerSettings().linger_ms,
    )
    async with _Probe(api, token, dsn) as probe:
        await producer.start()
        try:
            await _first_visible(producer, probe, topic)
            sent, elapsed = await _publish_steadily(
                producer, topic, probe, rate, warmup + seconds, warmup, sample_every
            )
        finally:
            await producer.stop()
    ms = sorted(x * 1000 for x in probe.latencies)
    return Freshness(
        p50_ms=statistics.median(ms),
        p99_ms=ms[min(len(ms) - 1, round(0.99 * (len(ms) - 1)))],
        max_ms=ms[-1],
        samples=len(ms),
        rate=sent / elapsed,
        through="database (no token for the API)" if dsn else "API",
    )


async def _publish_steadily(
    producer: AIOKafkaProducer,
    topic: str,
    probe: _Probe,
    rate: float,
    seconds: float,
    warmup: float,
    sample_every: int,
) -> tuple[int, float]:
    """Queued, Started 50 ms later and Completed 300 ms later, at ``rate`` events/s in all."""
    followers: set[asyncio.Task[None]] = set()
    pending: list[tuple[float, str, bytes]] = []  # (due, execution id, value), a heap
    agent, user = str(uuid.uuid4()), str(uuid.uuid4())
    created = sent = terminals = 0
    start = next_tick = time.perf_counter()
    while (now := time.perf_counter()) < start + seconds:
        while created < (now - start) * rate / 3:
            created += 1
            eid = str(uuid.uuid4())
            ids = {"execution_id": eid, "agent_id": agent, "user_id": user}
            request = {"input_data": {"prompt": "freshness probe"}, "agent_name": "Bench"}
            for delay, kind, extra in (
                (0.0, "ExecutionQueued", request),
                (0.05, "ExecutionStarted", request),
                (0.3, "ExecutionCompleted", {"output_data": 1}),
            ):
                heapq.heappush(pending, (now + delay, eid, _event(kind, eid, ids, extra)))
        while pending and pending[0][0] <= now:
            _, eid, value = heapq.heappop(pending)
            published = time.perf_counter()
            await producer.send(topic, value, key=eid.encode(), headers=HEADERS)
            sent += 1
            if b'"ExecutionCompleted"' in value:
                terminals += 1
                if now - start > warmup and terminals % sample_every == 0:
                    task = asyncio.create_task(probe.follow(eid, published))
                    followers.add(task)
                    task.add_done_callback(followers.discard)
        next_tick += _TICK
        await asyncio.sleep(max(0.0, next_tick - time.perf_counter()))
    elapsed = time.perf_counter() - start
    await producer.flush()
    await asyncio.gather(*followers)
    return sent, elapsed
