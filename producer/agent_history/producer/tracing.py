"""A tracked run's span, after OpenTelemetry's GenAI semantic conventions for agent spans, and
the W3C trace context that the run's events carry (the CloudEvents distributed-tracing
extension: ``traceparent``, ``tracestate``).

Only the OpenTelemetry API is used here: the worker's own SDK, when it configured one, records
and exports the spans. Without one (the global tracer provider is still the API's proxy, or a
no-op one) a run does no span work at all and its events carry no trace context.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Final, TypeAlias

from opentelemetry import context, trace
from opentelemetry.trace import (
    NoOpTracerProvider,
    ProxyTracerProvider,
    SpanContext,
    SpanKind,
    Status,
    StatusCode,
    Tracer,
    TracerProvider,
)

from agent_history.contract.events import RunRequestData, Usage

TRACER_NAME: Final = "agent_history.producer"
OPERATION: Final = "invoke_agent"  # gen_ai.operation.name of an agent's run
_UNRESOLVED: Final = object()

# The envelope attributes (traceparent, and tracestate if any) that carry a run's trace context
# on its events; None: no context.
TraceContext: TypeAlias = Mapping[str, str] | None


class RunTracing:
    """Starts run spans with ``provider``, by default the global tracer provider.

    Whether the global provider is a real one (an SDK's) is looked up once, at the first run:
    configure the SDK before the first tracked run (as OpenTelemetry asks of any library).
    """

    def __init__(self, provider: TracerProvider | None = None) -> None:
        self._tracer: Tracer | object | None = (
            _UNRESOLVED if provider is None else _tracer_of(provider)
        )

    def start(self, request: RunRequestData) -> RunSpan | None:
        """The run's span, a child of the current span, made current until it ends; None
        (and nothing done) without a real tracer provider."""
        tracer = self._tracer
        if tracer is _UNRESOLVED:
            self._tracer = tracer = _tracer_of(trace.get_tracer_provider())
        if tracer is None:
            return None
        assert isinstance(tracer, Tracer)
        return RunSpan(tracer, request)


def _tracer_of(provider: TracerProvider) -> Tracer | None:
    if isinstance(provider, ProxyTracerProvider | NoOpTracerProvider):
        return None
    return provider.get_tracer(TRACER_NAME)


class RunSpan:
    """One run's ``invoke_agent`` span; ``context`` holds the envelope attributes that put its
    trace context on the run's events (None when the span has no valid context)."""

    __slots__ = ("_span", "_token", "context")

    def __init__(self, tracer: Tracer, request: RunRequestData) -> None:
        attributes: dict[str, str] = {
            "gen_ai.operation.name": OPERATION,
            "gen_ai.agent.id": str(request.agent_id),
            "agent_history.execution_id": str(request.execution_id),
        }
        name = OPERATION
        if request.agent_name:
            attributes["gen_ai.agent.name"] = request.agent_name
            name = f"{OPERATION} {request.agent_name}"
        if request.model is not None:
            attributes["gen_ai.request.model"] = request.model
        self._span = tracer.start_span(name, kind=SpanKind.INTERNAL, attributes=attributes)
        self.context = envelope_attributes(self._span.get_span_context())
        self._token = context.attach(trace.set_span_in_context(self._span))

    def end(self, usage: Usage | None, error: BaseException | None, message: str) -> None:
        """Ends the span with the run's usage, and its error (``message`` describes it)."""
        context.detach(self._token)
        span = self._span
        if usage is not None and span.is_recording():
            if usage.input_tokens is not None:
                span.set_attribute("gen_ai.usage.input_tokens", usage.input_tokens)
            if usage.output_tokens is not None:
                span.set_attribute("gen_ai.usage.output_tokens", usage.output_tokens)
        if error is not None:
            span.set_attribute("error.type", type(error).__qualname__)
            span.set_status(Status(StatusCode.ERROR, message))
        span.end()


def envelope_attributes(span_context: SpanContext) -> dict[str, str] | None:
    """``traceparent`` (W3C, version 00) and, when there is one, ``tracestate``."""
    if not span_context.is_valid:
        return None
    flags = span_context.trace_flags
    attributes = {
        "traceparent": f"00-{span_context.trace_id:032x}-{span_context.span_id:016x}-{flags:02x}"
    }
    state = span_context.trace_state.to_header()
    if state:
        attributes["tracestate"] = state
    return attributes
