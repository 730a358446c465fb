"""The API's metrics (Prometheus), served at /metrics: requests by route template and status,
their latency, and the database pool.

One registry per app (and so per worker process): with `--workers N`, a scrape reaches one
of the N processes, so scrape each worker's port or run one worker per pod.
"""

from __future__ import annotations

import time
from collections.abc import Iterator

from fastapi import FastAPI, Response
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlalchemy.pool import QueuePool
from starlette.types import ASGIApp, Message, Receive, Scope, Send

LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10)
# Any other method is counted as "other": clients choose methods, labels must stay few.
_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
UNMATCHED = "unmatched"


class ApiMetrics:
    """The app's registry and metrics; ``watch_pool`` once the engine exists."""

    def __init__(self) -> None:
        self.registry = registry = CollectorRegistry()
        self.requests = Counter(
            "agent_history_api_requests",
            "HTTP requests answered, by method, route template and status code.",
            ["method", "route", "status"],
            registry=registry,
        )
        self.latency = Histogram(
            "agent_history_api_request_duration_seconds",
            "Time to answer an HTTP request, by method and route template.",
            ["method", "route"],
            buckets=LATENCY_BUCKETS,
            registry=registry,
        )
        self.in_progress = Gauge(
            "agent_history_api_requests_in_progress",
            "HTTP requests being answered.",
            registry=registry,
        )
        self._pool = _Pool()
        registry.register(self._pool)

    def watch_pool(self, engine: AsyncEngine | None) -> None:
        self._pool.engine = engine


class _Pool(Collector):
    def __init__(self) -> None:
        self.engine: AsyncEngine | None = None

    def collect(self) -> Iterator[Metric]:
        connections = GaugeMetricFamily(
            "agent_history_api_db_pool_connections",
            "Database connections of this process's pool: in_use by a request, or idle.",
            labels=["state"],
        )
        size = GaugeMetricFamily(
            "agent_history_api_db_pool_size_connections",
            "Connections the pool may hold (DATABASE_POOL_SIZE); requests wait beyond.",
        )
        pool = self.engine.pool if self.engine is not None else None
        if isinstance(pool, QueuePool):
            connections.add_metric(["in_use"], pool.checkedout())
            connections.add_metric(["idle"], pool.checkedin())
            size.add_metric([], pool.size())
        yield connections
        yield size

    def describe(self) -> Iterator[Metric]:
        return self.collect()


class _Measured:
    """ASGI middleware: counts and times each request, by the route template it matched."""

    def __init__(self, app: ASGIApp, metrics: ApiMetrics) -> None:
        self._app, self._metrics = app, metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self._app(scope, receive, send)
            return
        metrics, began, status = self._metrics, time.perf_counter(), 500

        async def sending(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        metrics.in_progress.inc()
        try:
            await self._app(scope, receive, sending)
        finally:
            metrics.in_progress.dec()
            method = scope["method"] if scope["method"] in _METHODS else "other"
            # The router puts the route it matched in the scope (FastAPI and Starlette).
            route = getattr(scope.get("route"), "path", None) or UNMATCHED
            metrics.requests.labels(method, route, str(status)).inc()
            metrics.latency.labels(method, route).observe(time.perf_counter() - began)


def install_metrics(app: FastAPI) -> ApiMetrics:
    """Measure every request of ``app`` and serve the metrics at GET /metrics."""
    metrics = ApiMetrics()
    app.add_middleware(_Measured, metrics=metrics)

    async def serve_metrics() -> Response:
        return Response(generate_latest(metrics.registry), media_type=CONTENT_TYPE_LATEST)

    app.add_api_route("/metrics", serve_metrics, methods=["GET"], include_in_schema=False)
    return metrics
