"""The services' OpenTelemetry SDK, configured in one place from the standard ``OTEL_*``
environment variables.

Tracing is on when ``OTEL_TRACES_EXPORTER`` names an exporter (``otlp``, ``console``) or an
OTLP endpoint is set (``OTEL_EXPORTER_OTLP_ENDPOINT``, ``OTEL_EXPORTER_OTLP_TRACES_ENDPOINT``);
off with ``OTEL_SDK_DISABLED=true`` or ``OTEL_TRACES_EXPORTER=none``. The SDK reads everything
else itself: ``OTEL_SERVICE_NAME`` and ``OTEL_RESOURCE_ATTRIBUTES``, the sampler
(``OTEL_TRACES_SAMPLER``), the batch processor (``OTEL_BSP_*``) and the OTLP exporter's
endpoint, headers, timeout and compression (``OTEL_EXPORTER_OTLP_*``: OTLP over HTTP/protobuf).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping

from opentelemetry import trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import (
    BatchSpanProcessor,
    ConsoleSpanExporter,
    SimpleSpanProcessor,
    SpanExporter,
)
from opentelemetry.trace import NoOpTracerProvider, ProxyTracerProvider

log = logging.getLogger(__name__)
_ENDPOINTS = ("OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")


def exporters_named(environ: Mapping[str, str]) -> list[str]:
    """The span exporters the environment asks for; none: tracing is off."""
    if environ.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
        return []
    named = environ.get("OTEL_TRACES_EXPORTER", "").strip().lower()
    if named:
        return [name.strip() for name in named.split(",") if name.strip() not in ("", "none")]
    return ["otlp"] if any(environ.get(name) for name in _ENDPOINTS) else []


def configure_tracing(
    service_name: str, environ: Mapping[str, str] = os.environ
) -> TracerProvider | None:
    """Sets the global tracer provider from ``environ`` and returns it; None when tracing is
    off (the global provider then stays OpenTelemetry's no-op proxy: nothing is traced)."""
    names = exporters_named(environ)
    if not names:
        return None
    current = trace.get_tracer_provider()
    if isinstance(current, TracerProvider):  # configured already (by this process)
        return current
    resource = Resource.create({"service.name": service_name})  # OTEL_SERVICE_NAME wins
    provider = TracerProvider(resource=resource)
    for name in names:
        if name == "console":
            provider.add_span_processor(SimpleSpanProcessor(ConsoleSpanExporter()))
        elif name == "otlp":
            provider.add_span_processor(BatchSpanProcessor(_otlp()))
        else:
            log.warning("OTEL_TRACES_EXPORTER: unknown exporter %r ignored", name)
    trace.set_tracer_provider(provider)
    log.info("tracing to %s as service %s", ", ".join(names), resource.attributes["service.name"])
    return provider


def _otlp() -> SpanExporter:
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

    return OTLPSpanExporter()  # endpoint, headers, timeout: from OTEL_EXPORTER_OTLP_*


def is_real(provider: trace.TracerProvider) -> bool:
    """Whether ``provider`` records spans (an SDK's), not the API's proxy or no-op one."""
    return not isinstance(provider, ProxyTracerProvider | NoOpTracerProvider)
