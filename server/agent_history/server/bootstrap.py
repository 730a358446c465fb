"""The composition root of the projector's commands: builds each part from settings and
hands it its collaborators (cosmicpython's bootstrap.py does the same for its message bus).

The live projector, replay, prune and erase are wired here, from one ProjectorSettings, with one
engine each: the live projector gets a store over it and, for every attempt to start, fresh
Kafka clients (a subscriber and a dead-letter producer); replay gets the engine and a consumer
in no group. The watchdog, from WatchdogSettings, gets an engine and fresh Kafka clients
(end offsets, verdict producer) each time it takes the lead. The parts build no engine,
store or consumer of their own, so tests hand them fakes instead. The API's app is built here
too, handed the erase (its one writing endpoint). Only entry points (the CLI, the API's worker
processes, test fixtures, benchmarks) use this module.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine
from contextlib import asynccontextmanager
from datetime import datetime
from typing import TYPE_CHECKING, Any, Protocol
from uuid import UUID

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from opentelemetry import trace
from opentelemetry.trace import TracerProvider
from prometheus_client import CollectorRegistry

from agent_history.projector.app import Connection, run_projector
from agent_history.projector.consumer import Projector
from agent_history.projector.deadletter import DeadLetters
from agent_history.projector.dlq import DeadLetterQueue
from agent_history.projector.erasure import Erasure, erase_user
from agent_history.projector.job_metrics import ReplayMetrics, WatchdogMetrics, watchdog_registry
from agent_history.projector.loader import Progress, replay_consumer
from agent_history.projector.metrics import ProjectorMetrics
from agent_history.projector.probes import serving_probes
from agent_history.projector.replay import ReplayResult, replay
from agent_history.projector.retention import prune
from agent_history.projector.settings import ProjectorSettings, WatchdogSettings
from agent_history.projector.store import PostgresStore
from agent_history.projector.subscriber import subscribe
from agent_history.projector.tracing import BatchTracing
from agent_history.projector.verdict_log import KafkaVerdictLog
from agent_history.projector.watchdog import Watchdog
from agent_history.read_model.db import DatabaseSettings, make_engine
from agent_history.server.tracing import configure_tracing, is_real

if TYPE_CHECKING:
    from fastapi import FastAPI

    from agent_history.api.settings import ApiSettings


class Project(Protocol):
    """The live projector, wired: projects until ``stop``, sets ``started`` once it runs."""

    async def __call__(self, stop: asyncio.Event, started: asyncio.Event | None = None) -> None: ...


@asynccontextmanager
async def build_projector(
    settings: ProjectorSettings,
    metrics: ProjectorMetrics | None = None,
    tracer_provider: TracerProvider | None = None,
) -> AsyncIterator[Project]:
    """The live projector, ready to run until ``stop``, its probe port served meanwhile; its
    engine is disposed on the way out. Its batch spans go to ``tracer_provider``, by default
    the global one (server/tracing.py)."""
    # A batch is a few round trips; a checkout's ping would be three more for every batch. A
    # connection that died while pooled fails its batch, which is retried on a new one, and has
    # the pool's older connections replaced (read_model/prepared.py). Off, synchronous_commit
    # is safe for every write here (store.py).
    engine = make_engine(settings, pre_ping=False, synchronous_commit=settings.synchronous_commit)
    tracing = BatchTracing(settings, tracer_provider)
    if metrics is None:
        registry = CollectorRegistry()
        metrics = ProjectorMetrics(registry, settings.topic, settings.ready_stall_seconds)
    store = PostgresStore(engine, settings.consumer_group, settings.topic)

    def connect() -> Connection:
        dead_letters = DeadLetters(settings, settings.consumer_group)
        projector = Projector(settings, store, dead_letters, metrics=metrics, tracing=tracing)
        return Connection(subscribe(settings, projector), projector, dead_letters)

    async def project(stop: asyncio.Event, started: asyncio.Event | None = None) -> None:
        metrics.started = started = started or asyncio.Event()
        await run_projector(settings, connect, stop, started)

    host, port = settings.metrics_host, settings.metrics_port
    try:
        async with serving_probes(host, port, metrics.registry, metrics.unready):
            yield project
    finally:
        await engine.dispose()


@asynccontextmanager
async def build_replay(
    settings: ProjectorSettings, progress: Progress | None = None, metrics_port: int = 0
) -> AsyncIterator[Callable[[], Awaitable[ReplayResult]]]:
    """Replay, ready to run (as often as wanted), its progress served as metrics on
    ``metrics_port`` (0: not served); its engine is disposed on the way out."""
    engine = make_engine(settings)
    metrics = ReplayMetrics(CollectorRegistry())

    def report(done: int, total: int) -> None:
        metrics.progress(done, total)
        if progress is not None:
            progress(done, total)

    async def run() -> ReplayResult:
        return await replay(settings, engine, replay_consumer(settings), report)

    try:
        async with serving_probes(settings.metrics_host, metrics_port, metrics.registry, list):
            yield run
    finally:
        await engine.dispose()


@asynccontextmanager
async def build_pruner(
    settings: ProjectorSettings,
) -> AsyncIterator[Callable[[datetime], Awaitable[int]]]:
    """Prune, ready to delete the executions that started before a cutoff."""
    engine = make_engine(settings)

    async def run(cutoff: datetime) -> int:
        return await prune(engine, cutoff)

    try:
        yield run
    finally:
        await engine.dispose()


@asynccontextmanager
async def build_watchdog(settings: WatchdogSettings) -> AsyncIterator[Watchdog]:
    """The watchdog, ready to run until stopped, its probe port served meanwhile; fresh Kafka
    clients each time it leads."""
    engine = make_engine(settings)
    try:
        watchdog = Watchdog(settings, engine, lambda: KafkaVerdictLog(settings))
        metrics = WatchdogMetrics(watchdog, settings.ready_stall_seconds)
        registry = watchdog_registry(metrics)
        async with serving_probes(
            settings.metrics_host, settings.metrics_port, registry, metrics.unready
        ):
            yield watchdog
    finally:
        await engine.dispose()


@asynccontextmanager
async def build_dead_letter_queue(settings: ProjectorSettings) -> AsyncIterator[DeadLetterQueue]:
    """The dead-letter topic for `agent-history dlq`: fresh Kafka clients for every call."""
    engine = make_engine(settings)

    def consumer() -> AIOKafkaConsumer:
        return AIOKafkaConsumer(
            bootstrap_servers=settings.kafka_bootstrap_servers,
            group_id=None,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
        )

    def producer() -> AIOKafkaProducer:
        return AIOKafkaProducer(
            bootstrap_servers=settings.kafka_bootstrap_servers, enable_idempotence=True
        )

    try:
        yield DeadLetterQueue(settings, engine, consumer, producer)
    finally:
        await engine.dispose()


def build_eraser(settings: DatabaseSettings) -> Callable[[UUID], Coroutine[Any, Any, Erasure]]:
    """Erase, ready to erase a user (as often as wanted); an engine of its own each time."""

    async def erase(user_id: UUID) -> Erasure:
        # Erasures are rare: an engine per erasure leaves nothing to dispose of at shutdown.
        engine = make_engine(settings)
        try:
            return await erase_user(engine, user_id)
        finally:
            await engine.dispose()

    return erase


def build_api(settings: ApiSettings, tracer_provider: TracerProvider | None = None) -> FastAPI:
    """The API's app, with the erase behind its erase endpoint; with a real tracer provider
    (``tracer_provider``, else the global one), a span per request (FastAPI instrumentation)."""
    from agent_history.api.app import create_app

    app = create_app(settings, eraser=build_eraser(settings))
    provider = tracer_provider if tracer_provider is not None else trace.get_tracer_provider()
    if is_real(provider):
        from opentelemetry.instrumentation.fastapi import FastAPIInstrumentor

        FastAPIInstrumentor.instrument_app(app, tracer_provider=provider)
    return app


def api_from_environment() -> FastAPI:
    """The app of one `agent-history api` worker process, from its environment. For uvicorn to
    call in that process only: it freezes what the process holds by then
    (api.app.freeze_for_good)."""
    from agent_history.api.app import freeze_for_good
    from agent_history.api.settings import ApiSettings
    from agent_history.server.logs import configure_logging

    settings = ApiSettings()
    # After uvicorn set up its own loggers in this process: ours replace them.
    configure_logging(settings.log_format)
    configure_tracing("agent-history-api")
    app = build_api(settings)
    freeze_for_good()
    return app
