"""track_execution's span: invoke_agent after the GenAI conventions, a child of the current
span, its trace context on every event of the run; nothing at all without an SDK."""

from __future__ import annotations

import asyncio
from typing import Any, cast
from uuid import UUID

import pytest
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode

from agent_history.contract.events import ExecutionData
from agent_history.producer.heartbeats import Heartbeats
from agent_history.producer.publisher import Publisher
from agent_history.producer.tracing import RunTracing, TraceContext
from agent_history.producer.tracking import track_execution

AGENT = UUID("a0000000-0000-4000-8000-000000000001")
USER = UUID("b0000000-0000-4000-8000-000000000001")


class TracedPublisher:
    """Records each event's kind and the trace context it was given."""

    def __init__(self, provider: TracerProvider | None) -> None:
        self.traces: list[tuple[str, TraceContext]] = []
        self.heartbeats = Heartbeats(interval_s=60)
        self.tracing = RunTracing(provider)

    async def publish_started(self, data: ExecutionData, *, trace: TraceContext = None) -> None:
        self.record_started(data, trace=trace)

    async def publish_end(self, data: ExecutionData, *, trace: TraceContext = None) -> None:
        self.record_end(data, trace=trace)

    def record_started(self, data: ExecutionData, *, trace: TraceContext = None) -> None:
        self.traces.append(("started", trace))

    def record_end(self, data: ExecutionData, *, trace: TraceContext = None) -> None:
        self.traces.append((type(data).__name__, trace))

    def as_publisher(self) -> Publisher:
        return cast(Publisher, self)


@pytest.fixture
def exporter() -> InMemorySpanExporter:
    return InMemorySpanExporter()


@pytest.fixture
def provider(exporter: InMemorySpanExporter) -> TracerProvider:
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    return provider


def _traceparent(span: Any) -> str:
    c = span.context
    return f"00-{c.trace_id:032x}-{c.span_id:016x}-{c.trace_flags:02x}"


async def test_a_run_is_an_invoke_agent_span_whose_context_its_events_carry(
    provider: TracerProvider, exporter: InMemorySpanExporter
) -> None:
    fake = TracedPublisher(provider)
    async with track_execution(
        AGENT, USER, publisher=fake.as_publisher(), agent_name="Scout", model="m-1"
    ) as run:
        (_, opened) = fake.heartbeats._beats()[0]
        run.add_usage(input_tokens=5, output_tokens=2)

    (span,) = exporter.get_finished_spans()
    assert (span.name, span.kind, span.parent) == ("invoke_agent Scout", SpanKind.INTERNAL, None)
    assert span.attributes == {
        "gen_ai.operation.name": "invoke_agent",
        "gen_ai.agent.id": str(AGENT),
        "agent_history.execution_id": str(run.execution_id),
        "gen_ai.agent.name": "Scout",
        "gen_ai.request.model": "m-1",
        "gen_ai.usage.input_tokens": 5,
        "gen_ai.usage.output_tokens": 2,
    }
    assert span.status.status_code == StatusCode.UNSET
    context = {"traceparent": _traceparent(span)}
    assert fake.traces == [("started", context), ("CompletedData", context)]
    assert opened == context, "heartbeats carry it too"


def test_a_failed_run_sets_error_status_and_type_and_nested_runs_are_children(
    provider: TracerProvider, exporter: InMemorySpanExporter
) -> None:
    fake = TracedPublisher(provider)
    tracer = provider.get_tracer("test")
    with (
        tracer.start_as_current_span("request") as request,
        track_execution(AGENT, USER, publisher=fake.as_publisher()),
        pytest.raises(KeyError),
        track_execution(AGENT, USER, publisher=fake.as_publisher()),
    ):
        raise KeyError("k")

    inner, outer, first = exporter.get_finished_spans()
    assert first.name == "request"
    assert (inner.name, outer.name) == ("invoke_agent", "invoke_agent")
    assert outer.parent is not None
    assert outer.parent.span_id == request.get_span_context().span_id
    assert inner.parent is not None
    assert inner.parent.span_id == outer.context.span_id
    assert inner.status.status_code == StatusCode.ERROR
    assert inner.status.description == "KeyError: 'k'"
    assert (inner.attributes or {})["error.type"] == "KeyError"
    assert outer.status.status_code == StatusCode.UNSET


async def test_a_cancelled_run_records_its_error_type(
    provider: TracerProvider, exporter: InMemorySpanExporter
) -> None:
    fake = TracedPublisher(provider)
    with pytest.raises(asyncio.CancelledError):
        async with track_execution(AGENT, USER, publisher=fake.as_publisher()):
            raise asyncio.CancelledError

    (span,) = exporter.get_finished_spans()
    assert (span.attributes or {})["error.type"] == "CancelledError"


def test_without_an_sdk_there_is_no_span_and_no_trace_context() -> None:
    fake = TracedPublisher(None)  # the global provider: the API's proxy in tests
    with track_execution(AGENT, USER, publisher=fake.as_publisher()):
        pass

    assert fake.traces == [("started", None), ("CompletedData", None)]
