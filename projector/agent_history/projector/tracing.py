"""The projector's span per batch: ``process <topic>`` (OpenTelemetry's messaging conventions),
linked to the trace context that the batch's events carry (their runs' spans), so that a trace
backend leads from an agent's run to the batch that projected it.

Only the OpenTelemetry API is used: the service's SDK, configured by the composition root,
records and exports. Without one, ``batch`` does nothing.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from typing import Final

from opentelemetry import trace
from opentelemetry.trace import (
    NoOpTracerProvider,
    ProxyTracerProvider,
    Span,
    SpanContext,
    SpanKind,
    TraceFlags,
    TracerProvider,
)
from opentelemetry.util.types import AttributeValue

from agent_history.projector.settings import ProjectorSettings

TRACER_NAME: Final = "agent_history.projector"


class BatchSpan:
    """What the projector tells a batch's span once it has decoded the batch."""

    def __init__(self, span: Span | None) -> None:
        self._span = span

    def decoded(self, traceparents: Iterable[str], executions: int, poison: int) -> None:
        span = self._span
        if span is None or not span.is_recording():
            return
        for traceparent in traceparents:
            span.add_link(_context_of(traceparent))
        span.set_attribute("agent_history.batch.executions", executions)
        span.set_attribute("agent_history.batch.dead_lettered", poison)


_NO_SPAN: Final = BatchSpan(None)


class BatchTracing:
    """Opens the span of each batch, with ``provider`` (by default the global one, looked up
    here once: the composition root configures the SDK before it builds the projector)."""

    def __init__(self, settings: ProjectorSettings, provider: TracerProvider | None = None) -> None:
        provider = provider if provider is not None else trace.get_tracer_provider()
        real = not isinstance(provider, ProxyTracerProvider | NoOpTracerProvider)
        self._tracer = provider.get_tracer(TRACER_NAME) if real else None
        self._name = f"process {settings.topic}"
        self._attributes: dict[str, AttributeValue] = {
            "messaging.system": "kafka",
            "messaging.operation.type": "process",
            "messaging.operation.name": "process",
            "messaging.destination.name": settings.topic,
            "messaging.consumer.group.name": settings.consumer_group,
        }

    @contextmanager
    def batch(self, size: int) -> Iterator[BatchSpan]:
        """The span of one batch of ``size`` records, current while the batch is written; it
        records the batch's error, if any."""
        if self._tracer is None:
            yield _NO_SPAN
            return
        attributes = {**self._attributes, "messaging.batch.message_count": size}
        with self._tracer.start_as_current_span(
            self._name, kind=SpanKind.CONSUMER, attributes=attributes
        ) as span:
            yield BatchSpan(span)


def _context_of(traceparent: str) -> SpanContext:
    """The span a traceparent names (one the contract accepted: well-formed)."""
    return SpanContext(
        trace_id=int(traceparent[3:35], 16),
        span_id=int(traceparent[36:52], 16),
        is_remote=True,
        trace_flags=TraceFlags(int(traceparent[53:55], 16)),
    )
