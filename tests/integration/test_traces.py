"""One trace, end to end on the real broker and database: the agent's run span -> the
traceparent of its events -> the projector's batch span links to it -> the row's trace_id ->
the API's response (whose request has a span of its own). Tracer providers with in-memory
exporters are handed to each part, so nothing global is configured."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator

import httpx
import pytest
from aiokafka import AIOKafkaConsumer
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode

from agent_history.api.auth import mint_token
from agent_history.api.settings import ApiSettings
from agent_history.contract.events import decode_record
from agent_history.producer import Publisher, track_execution
from agent_history.producer.settings import ProducerSettings
from agent_history.projector.settings import ProjectorSettings
from agent_history.server.bootstrap import build_api, build_projector
from tests.support import eventually

pytestmark = pytest.mark.integration

API = "/api/v1/agent-studio"


def recording() -> tuple[TracerProvider, InMemorySpanExporter]:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    return provider, exporter


@pytest.fixture
async def traced_projector(
    projector_settings: ProjectorSettings,
) -> AsyncIterator[InMemorySpanExporter]:
    provider, exporter = recording()
    stop, started = asyncio.Event(), asyncio.Event()
    async with build_projector(projector_settings, tracer_provider=provider) as project:
        task = asyncio.create_task(project(stop, started))
        await asyncio.wait_for(started.wait(), 60)
        try:
            yield exporter
        finally:
            stop.set()
            await asyncio.wait_for(task, 30)


async def records_of(kafka_bootstrap: str, topic: str, count: int) -> list[object]:
    consumer = AIOKafkaConsumer(
        topic, bootstrap_servers=kafka_bootstrap, auto_offset_reset="earliest"
    )
    await consumer.start()
    seen: list[object] = []
    try:
        async with asyncio.timeout(30):
            while len(seen) < count:
                for batch in (await consumer.getmany(timeout_ms=500)).values():
                    seen.extend(batch)
    finally:
        await consumer.stop()
    return seen


def _hex(trace_id: int) -> str:
    return f"{trace_id:032x}"


async def test_one_trace_from_the_agents_span_to_the_apis_response(
    producer_settings: ProducerSettings,
    api_settings: ApiSettings,
    traced_projector: InMemorySpanExporter,
    kafka_bootstrap: str,
) -> None:
    agent_provider, agent_spans = recording()
    agent_id, user_id = uuid.uuid4(), uuid.uuid4()
    tracer = agent_provider.get_tracer("the agent worker")

    async with Publisher(producer_settings, tracer_provider=agent_provider) as publisher:
        with tracer.start_as_current_span("handle request") as outer:
            async with track_execution(
                agent_id,
                user_id,
                {"q": "?"},
                publisher=publisher,
                agent_name="Scout",
                model="gpt-4o",
            ) as run:
                run.add_usage(input_tokens=12, output_tokens=3)
                run.output = "!"
        assert await publisher.flush(30)

    (span,) = [s for s in agent_spans.get_finished_spans() if s.name.startswith("invoke_agent")]
    trace_id = _hex(span.context.trace_id)
    assert span.name == "invoke_agent Scout"
    assert span.kind == SpanKind.INTERNAL
    assert span.parent is not None
    assert span.parent.span_id == outer.get_span_context().span_id
    assert dict(span.attributes or {}) == {
        "gen_ai.operation.name": "invoke_agent",
        "gen_ai.agent.id": str(agent_id),
        "gen_ai.agent.name": "Scout",
        "gen_ai.request.model": "gpt-4o",
        "agent_history.execution_id": str(run.execution_id),
        "gen_ai.usage.input_tokens": 12,
        "gen_ai.usage.output_tokens": 3,
    }
    traceparent = f"00-{trace_id}-{span.context.span_id:016x}-{span.context.trace_flags:02x}"

    # Every event of the run carries the run span's context.
    records = await records_of(kafka_bootstrap, producer_settings.topic, 2)
    events = [decode_record(r.headers, r.value) for r in records]  # type: ignore[attr-defined]
    assert [e.traceparent for e in events] == [traceparent, traceparent]

    # The projector's batch span links to it.
    def linked(spans: tuple[ReadableSpan, ...]) -> list[ReadableSpan]:
        return [
            s for s in spans if any(_hex(link.context.trace_id) == trace_id for link in s.links)
        ]

    batches = await eventually(
        lambda: _finished(traced_projector), lambda s: bool(linked(s)), what="a linked batch span"
    )
    batch = linked(batches)[0]
    assert batch.name == f"process {producer_settings.topic}"
    assert batch.kind == SpanKind.CONSUMER
    assert batch.status.status_code != StatusCode.ERROR
    attributes = dict(batch.attributes or {})
    assert attributes["messaging.system"] == "kafka"
    assert attributes["messaging.destination.name"] == producer_settings.topic
    assert int(attributes["messaging.batch.message_count"]) >= 1  # type: ignore[arg-type]
    assert batch.links[0].context.span_id == span.context.span_id

    # The row keeps the trace id, and the API returns it, in a traced request.
    api_provider, api_spans = recording()
    app = build_api(api_settings, api_provider)
    token = mint_token(api_settings, user_id)
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app),
            base_url="http://api",
            headers={"Authorization": f"Bearer {token}"},
        ) as client,
    ):

        async def detail() -> httpx.Response:
            return await client.get(f"{API}/executions/{run.execution_id}")

        found = await eventually(detail, lambda r: r.status_code == 200, what="the run in the API")
        listed = await client.get(f"{API}/agents/{agent_id}/executions")
        tree = await client.get(f"{API}/executions/{run.execution_id}/tree")

    assert found.json()["trace_id"] == trace_id
    assert [e["trace_id"] for e in listed.json()["executions"]] == [trace_id]
    assert [e["trace_id"] for e in tree.json()["executions"]] == [trace_id]
    requests = [s for s in api_spans.get_finished_spans() if s.kind == SpanKind.SERVER]
    assert any(
        (s.attributes or {}).get("http.route") == "/api/v1/agent-studio/executions/{execution_id}"
        for s in requests
    ), [s.name for s in requests]


async def _finished(exporter: InMemorySpanExporter) -> tuple[ReadableSpan, ...]:
    return exporter.get_finished_spans()


async def test_without_an_sdk_events_carry_no_trace_context_and_nothing_raises(
    producer_settings: ProducerSettings, kafka_bootstrap: str
) -> None:
    async with Publisher(producer_settings) as publisher:
        with pytest.raises(ValueError, match="boom"):
            async with track_execution(uuid.uuid4(), uuid.uuid4(), publisher=publisher):
                raise ValueError("boom")
        assert await publisher.flush(30)

    records = await records_of(kafka_bootstrap, producer_settings.topic, 2)
    for record in records:
        assert all(not name.startswith("ce_trace") for name, _ in record.headers)  # type: ignore[attr-defined]
        assert b"traceparent" not in record.value  # type: ignore[attr-defined]
        assert decode_record(record.headers, record.value).traceparent is None  # type: ignore[attr-defined]


async def test_binary_mode_carries_ce_traceparent(
    producer_settings: ProducerSettings, kafka_bootstrap: str
) -> None:
    provider, spans = recording()
    settings = producer_settings.model_copy(update={"content_mode": "binary"})
    async with Publisher(settings, tracer_provider=provider) as publisher:
        with track_execution(uuid.uuid4(), uuid.uuid4(), publisher=publisher):
            pass
        assert await publisher.flush(30)

    (span,) = spans.get_finished_spans()
    context = span.context
    expected = f"00-{context.trace_id:032x}-{context.span_id:016x}-{context.trace_flags:02x}"
    records = await records_of(kafka_bootstrap, producer_settings.topic, 2)
    for record in records:
        headers = dict(record.headers)  # type: ignore[attr-defined]
        assert headers["ce_traceparent"] == expected.encode()
        assert headers["content-type"] == b"application/json"
