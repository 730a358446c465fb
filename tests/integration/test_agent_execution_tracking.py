"""End to end on the real broker and database: producer -> Kafka -> projector -> table -> API."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import httpx
import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine

from agent_history.api.app import create_app
from agent_history.api.auth import mint_token
from agent_history.api.settings import ApiSettings
from agent_history.contract.events import (
    CompletedData,
    ExecutionCompleted,
    ExecutionStarted,
    RunRequestData,
)
from agent_history.producer import Publisher, track_execution
from agent_history.producer.settings import ProducerSettings
from agent_history.projector.settings import ProjectorSettings
from agent_history.read_model.tables import agent_executions, agents, projector_checkpoints
from tests.support import caught_up, eventually

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("running_projector")]

API = "/api/v1/agent-studio"


@pytest.fixture
async def publisher(producer_settings: ProducerSettings) -> AsyncIterator[Publisher]:
    async with Publisher(producer_settings) as p:
        yield p


@pytest.fixture
async def client(api_settings: ApiSettings) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(api_settings)
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app),
            base_url="http://api",
            headers={
                "Authorization": f"Bearer {mint_token(api_settings, uuid.uuid4(), all_scope=True)}"
            },
        ) as c,
    ):
        yield c


async def rows_of(engine: AsyncEngine, ids: list[uuid.UUID]) -> dict[uuid.UUID, Any]:
    async with engine.connect() as conn:
        result = await conn.execute(select(agent_executions).where(agent_executions.c.id.in_(ids)))
        return {row.id: row for row in result}


async def wait_for_rows(
    engine: AsyncEngine, ids: list[uuid.UUID], *, terminal: bool = True
) -> dict[uuid.UUID, Any]:
    def done(rows: dict[uuid.UUID, Any]) -> bool:
        return len(rows) == len(ids) and all(
            not terminal or r.status in {"completed", "failed", "cancelled"} for r in rows.values()
        )

    return await eventually(
        lambda: rows_of(engine, ids), done, what=f"{len(ids)} projected executions"
    )


async def test_execution_logged_on_agent_run(publisher: Publisher, db_engine: AsyncEngine) -> None:
    agent_id, user_id = uuid.uuid4(), uuid.uuid4()
    async with track_execution(
        agent_id, user_id, {"prompt": "hi"}, publisher=publisher, agent_name="Greeter"
    ) as run:
        run.output = {"answer": "hello"}

    row = (await wait_for_rows(db_engine, [run.execution_id]))[run.execution_id]
    assert (row.agent_id, row.user_id, row.status) == (agent_id, user_id, "completed")
    assert row.input_data == {"prompt": "hi"}
    assert row.output_data == {"answer": "hello"}
    assert row.error_message is None
    assert row.execution_end >= row.execution_start
    assert row.execution_time_ms is not None
    assert row.execution_time_ms >= 0
    async with db_engine.connect() as conn:
        name = await conn.scalar(select(agents.c.name).where(agents.c.id == agent_id))
    assert name == "Greeter"


async def _run_mix(publisher: Publisher, agent_id: uuid.UUID) -> dict[str, list[uuid.UUID]]:
    """Three completed, two failed and one cancelled run of one agent."""
    user_id = uuid.uuid4()
    ids: dict[str, list[uuid.UUID]] = {"completed": [], "failed": [], "cancelled": []}
    for i in range(3):
        async with track_execution(agent_id, user_id, {"i": i}, publisher=publisher) as run:
            run.output = i
        ids["completed"].append(run.execution_id)
    for i in range(2):
        tracking = track_execution(agent_id, user_id, {"i": i}, publisher=publisher)
        with pytest.raises(RuntimeError):
            async with tracking:
                raise RuntimeError(f"tool {i} broke")
        ids["failed"].append(tracking.run.execution_id)
    started = asyncio.Event()
    tracking = track_execution(agent_id, user_id, {}, publisher=publisher)

    async def long_run() -> None:
        async with tracking:
            started.set()
            await asyncio.Event().wait()

    task = asyncio.create_task(long_run())
    await started.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    ids["cancelled"].append(tracking.run.execution_id)
    return ids


async def test_execution_history_api_endpoint(
    publisher: Publisher, db_engine: AsyncEngine, client: httpx.AsyncClient
) -> None:
    agent_id = uuid.uuid4()
    ids = await _run_mix(publisher, agent_id)
    everything = [i for group in ids.values() for i in group]
    await wait_for_rows(db_engine, everything)

    page = (await client.get(f"{API}/agents/{agent_id}/executions", params={"limit": 4})).json()
    assert page["total"] == 6
    assert (page["limit"], page["offset"]) == (4, 0)
    assert len(page["executions"]) == 4
    starts = [e["execution_start"] for e in page["executions"]]
    assert starts == sorted(starts, reverse=True), "newest first"
    rest = (
        await client.get(f"{API}/agents/{agent_id}/executions", params={"limit": 4, "offset": 4})
    ).json()
    listed = [e["id"] for e in page["executions"] + rest["executions"]]
    assert sorted(listed) == sorted(str(i) for i in everything)

    failed = ids["failed"][0]
    detail = (await client.get(f"{API}/executions/{failed}")).json()
    assert detail["status"] == "failed"
    assert detail["error_message"] == "RuntimeError: tool 0 broke"
    assert detail["agent"]["id"] == str(agent_id)
    cancelled = (await client.get(f"{API}/executions/{ids['cancelled'][0]}")).json()
    assert cancelled["status"] == "cancelled"
    assert (await client.get(f"{API}/executions/{uuid.uuid4()}")).status_code == 404


async def test_execution_history_filtering_by_status(
    publisher: Publisher, db_engine: AsyncEngine, client: httpx.AsyncClient
) -> None:
    agent_id = uuid.uuid4()
    ids = await _run_mix(publisher, agent_id)
    await wait_for_rows(db_engine, [i for group in ids.values() for i in group])
    url = f"{API}/agents/{agent_id}/executions"

    failed = (await client.get(url, params={"status": "failed"})).json()
    assert failed["total"] == 2
    assert {e["id"] for e in failed["executions"]} == {str(i) for i in ids["failed"]}

    either = (await client.get(url, params=[("status", "failed"), ("status", "cancelled")])).json()
    assert either["total"] == 3
    assert {e["status"] for e in either["executions"]} == {"failed", "cancelled"}

    synonym = (await client.get(url, params={"status_filter": "completed"})).json()
    assert synonym["total"] == 3

    bad = await client.get(url, params={"status": "exploded"})
    assert bad.status_code == 422
    assert "status" in bad.text


async def test_execution_time_calculated_correctly(
    publisher: Publisher, db_engine: AsyncEngine
) -> None:
    """From event times (truncated to whole ms), never from when the projector ran."""
    execution_id, agent_id, user_id = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    t0 = datetime(2025, 3, 1, 12, 0, 0, tzinfo=UTC)
    common = {"specversion": "1.0", "source": "test", "subject": execution_id}
    ids = {"execution_id": execution_id, "agent_id": agent_id, "user_id": user_id}
    await publisher.publish(
        ExecutionStarted(
            **common, id=uuid.uuid4(), time=t0, data=RunRequestData(**ids, input_data={})
        )
    )
    await publisher.publish(
        ExecutionCompleted(
            **common,
            id=uuid.uuid4(),
            time=t0 + timedelta(seconds=83, microseconds=456_999),
            data=CompletedData(**ids, output_data="done"),
        )
    )
    row = (await wait_for_rows(db_engine, [execution_id]))[execution_id]
    assert row.execution_time_ms == 83_456
    assert row.execution_start == t0
    assert row.execution_end == t0 + timedelta(seconds=83, microseconds=456_999)


def _hand_written(
    kind: str, execution_id: str, at: str, event_id: str, data: dict[str, Any]
) -> bytes:
    """An event as any Kafka client would write it from the README."""
    envelope = {
        "specversion": "1.0",
        "id": event_id,
        "source": "urn:example:hand-written",
        "type": kind,
        "subject": execution_id,
        "time": at,
        "datacontenttype": "application/json",
        "data": data,
    }
    return json.dumps(envelope).encode()


async def test_hand_written_events_duplicated_and_reversed(
    kafka_bootstrap: str, projector_settings: ProjectorSettings, db_engine: AsyncEngine
) -> None:
    execution_id, agent_id, user_id = (str(uuid.uuid4()) for _ in range(3))
    ids = {"execution_id": execution_id, "agent_id": agent_id, "user_id": user_id}
    queued = _hand_written(
        "ExecutionQueued",
        execution_id,
        "2025-06-01T10:00:00+02:00",
        str(uuid.uuid4()),
        {**ids, "input_data": {"q": 1}, "agent_name": "Planner"},
    )
    started = _hand_written(
        "ExecutionStarted",
        execution_id,
        "2025-06-01T08:00:05.250Z",
        str(uuid.uuid4()),
        {**ids, "input_data": {"q": 2}},
    )
    failed = _hand_written(
        "ExecutionFailed",
        execution_id,
        "2025-06-01T08:00:07.000Z",
        str(uuid.uuid4()),
        {**ids, "error_message": "quota exceeded"},
    )
    late_cancel = _hand_written(
        "ExecutionCancelled",
        execution_id,
        "2025-06-01T08:00:09Z",
        str(uuid.uuid4()),
        {**ids, "reason": "user hit stop"},
    )
    producer = AIOKafkaProducer(bootstrap_servers=kafka_bootstrap)
    await producer.start()
    try:
        sent = [
            await producer.send_and_wait(
                projector_settings.topic,
                value,
                key=execution_id.encode(),
                headers=[("content-type", b"application/cloudevents+json")],
            )
            for value in [late_cancel, failed, failed, started, queued, started, late_cancel]
        ]
    finally:
        await producer.stop()

    s = projector_settings
    await caught_up(db_engine, s.consumer_group, s.topic, sent)
    key = uuid.UUID(execution_id)
    row = (await rows_of(db_engine, [key]))[key]
    assert row.status == "failed", "the earliest terminal event wins"
    assert row.error_message == "quota exceeded"
    assert row.execution_start == datetime(2025, 6, 1, 8, 0, 5, 250_000, tzinfo=UTC)
    assert row.execution_end == datetime(2025, 6, 1, 8, 0, 7, tzinfo=UTC)
    assert row.execution_time_ms == 1750
    assert row.input_data == {"q": 2}, "the Started event's input beats the Queued one"
    assert row.output_data is None
    async with db_engine.connect() as conn:
        name = await conn.scalar(select(agents.c.name).where(agents.c.id == uuid.UUID(agent_id)))
    assert name == "Planner"


async def test_invalid_records_are_dead_lettered_and_projection_continues(
    kafka_bootstrap: str, projector_settings: ProjectorSettings, db_engine: AsyncEngine
) -> None:
    good_id = str(uuid.uuid4())
    ids = {"execution_id": good_id, "agent_id": str(uuid.uuid4()), "user_id": str(uuid.uuid4())}
    good = _hand_written(
        "ExecutionStarted",
        good_id,
        "2025-06-01T08:00:00Z",
        str(uuid.uuid4()),
        {**ids, "input_data": {}},
    )
    producer = AIOKafkaProducer(bootstrap_servers=kafka_bootstrap)
    await producer.start()
    try:
        for value in [b"{not json", b'{"specversion": "1.0", "type": "ExecutionExploded"}', good]:
            await producer.send_and_wait(projector_settings.topic, value, key=good_id.encode())
    finally:
        await producer.stop()

    await wait_for_rows(db_engine, [uuid.UUID(good_id)], terminal=False)
    consumer = AIOKafkaConsumer(
        projector_settings.dlq_topic,
        bootstrap_servers=kafka_bootstrap,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
    )
    await consumer.start()
    dead: list[Any] = []

    async def drain() -> list[Any]:
        for records in (await consumer.getmany(timeout_ms=200)).values():
            dead.extend(records)
        return dead

    try:
        await eventually(drain, lambda got: len(got) >= 2, what="two dead-lettered records")
    finally:
        await consumer.stop()
    assert [r.value for r in dead] == [
        b"{not json",
        b'{"specversion": "1.0", "type": "ExecutionExploded"}',
    ]
    reasons = [dict(r.headers)["dlq-reason"].decode() for r in dead]
    assert "invalid event" in reasons[0]
    assert "ExecutionExploded" in reasons[1]
    assert all(
        dict(r.headers)["dlq-original-topic"] == projector_settings.topic.encode() for r in dead
    )
    async with db_engine.connect() as conn:
        counted = await conn.scalar(
            select(func.sum(projector_checkpoints.c.dead_lettered)).where(
                projector_checkpoints.c.consumer_group == projector_settings.consumer_group
            )
        )
    assert counted == 2


async def test_tracked_sub_runs_carry_their_details_and_show_as_a_tree(
    publisher: Publisher, db_engine: AsyncEngine, client: httpx.AsyncClient
) -> None:
    """A run that calls two sub-agents at once, one of which calls a tool, all through
    track_execution: each links to its caller by context, and the API draws the tree."""
    planner, searcher, user = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()

    async def search(n: int) -> uuid.UUID:
        async with track_execution(
            searcher, user, {"n": n}, publisher=publisher, model="small-1", tags=["search"]
        ) as run:
            if n == 1:
                async with track_execution(searcher, user, {"tool": "fetch"}, publisher=publisher):
                    pass
            run.add_usage(input_tokens=100 + n, output_tokens=10, cost="0.0001")
        return run.execution_id

    async with track_execution(
        planner,
        user,
        {"q": "plan"},
        publisher=publisher,
        model="large-2",
        tags=["prod", "eu"],
        metadata={"env": "prod", "attempt": 2},
    ) as root:
        children = await asyncio.gather(search(0), search(1))
        root.add_usage(input_tokens=1200, output_tokens=300, cost=Decimal("0.012"))
    await publisher.flush(30)

    tree: dict[str, Any] = await eventually(
        lambda: _json(client, f"{API}/executions/{root.execution_id}/tree"),
        lambda body: (
            len(body.get("executions", ())) == 4
            and all(n["status"] == "completed" for n in body["executions"])
        ),
        what="the tracked runs' tree",
    )
    nodes = {n["id"]: n for n in tree["executions"]}
    by_depth = sorted((n["depth"], n["parent_execution_id"]) for n in tree["executions"])
    tool = next(i for i, n in nodes.items() if n["depth"] == 2)
    assert by_depth == [
        (0, None),
        (1, str(root.execution_id)),
        (1, str(root.execution_id)),
        (2, str(children[1])),
    ], tree
    top = nodes[str(root.execution_id)]
    assert (top["model"], top["tags"], top["metadata"]) == (
        "large-2",
        ["prod", "eu"],
        {"env": "prod", "attempt": 2},
    )
    assert top["usage"] == {
        "input_tokens": 1200,
        "output_tokens": 300,
        "cost": {"amount": "0.012", "currency": "USD"},
    }
    assert nodes[str(children[1])]["usage"]["input_tokens"] == 101
    assert nodes[tool]["usage"] is None
    listed = (
        await client.get(
            f"{API}/agents/{searcher}/executions",
            params={"parent_execution_id": str(root.execution_id), "tag": "search"},
        )
    ).json()
    assert sorted(e["id"] for e in listed["executions"]) == sorted(str(c) for c in children)


async def _json(client: httpx.AsyncClient, path: str) -> dict[str, Any]:
    response = await client.get(path)
    return dict(response.json()) if response.status_code == 200 else {}
