"""Metrics and health on the real services: the API's /metrics after requests, the projector's
and the watchdog's port (/metrics, /healthz, /readyz), and the producer's spool collector."""

from __future__ import annotations

import socket
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy.ext.asyncio import AsyncEngine

from agent_history.api.settings import ApiSettings
from agent_history.producer import ProducerSettings, Publisher, track_execution
from agent_history.producer.metrics import SpoolCollector
from agent_history.projector.settings import ProjectorSettings, WatchdogSettings
from tests.conftest import projecting
from tests.faults_support import send
from tests.integration.history_api_support import PREFIX, api_client, bearer
from tests.integration.test_poison import encoded, envelope
from tests.integration.test_watchdog import Run, reaches, watchdog_settings, watching
from tests.support import caught_up, eventually

pytestmark = pytest.mark.integration
__all__ = ["watchdog_settings"]  # the fixture, shared with test_watchdog.py

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def parse(text: str) -> Samples:
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


async def test_the_api_counts_requests_by_route_template_and_status(
    api_settings: ApiSettings,
) -> None:
    user = uuid.uuid4()
    async with api_client(api_settings, bearer(api_settings, user)) as client:
        for _ in range(3):
            missing = await client.get(f"{PREFIX}/executions/{uuid.uuid4()}")
            assert missing.status_code == 404
        assert (await client.get("/healthz")).status_code == 200
        assert (await client.get("/no/such/path")).status_code == 404
        scraped = await client.get("/metrics")

    assert scraped.status_code == 200
    assert scraped.headers["content-type"].startswith("text/plain")
    seen = parse(scraped.text)
    route = f"{PREFIX}/executions/{{execution_id}}"
    requests = "agent_history_api_requests_total"
    assert seen[(requests, (("method", "GET"), ("route", route), ("status", "404")))] == 3
    assert seen[(requests, (("method", "GET"), ("route", "/healthz"), ("status", "200")))] == 1
    assert seen[(requests, (("method", "GET"), ("route", "unmatched"), ("status", "404")))] == 1
    latency = "agent_history_api_request_duration_seconds_count"
    assert seen[(latency, (("method", "GET"), ("route", route)))] == 3
    assert (
        seen[("agent_history_api_db_pool_size_connections", ())] == api_settings.database_pool_size
    )
    assert seen[("agent_history_api_db_pool_connections", (("state", "in_use"),))] == 0
    assert seen[("agent_history_api_db_pool_connections", (("state", "idle"),))] >= 1
    assert not any(str(user) in line for line in scraped.text.splitlines()), "an id in a label"


async def test_the_projector_port_shows_lag_progress_dead_letters_and_health(
    projector_settings: ProjectorSettings, db_engine: AsyncEngine, producer: Any
) -> None:
    settings = projector_settings.model_copy(update={"metrics_port": free_port()})
    base = f"http://127.0.0.1:{settings.metrics_port}"
    now = datetime.now(UTC).isoformat()
    events = [envelope() | {"time": now} for _ in range(20)]
    async with projecting(settings), httpx.AsyncClient(base_url=base, timeout=5) as client:
        sent = [
            await producer.send_and_wait(settings.topic, encoded(e), key=e["subject"].encode())
            for e in events
        ]
        sent.append(await producer.send_and_wait(settings.topic, b"{not json", partition=0))
        sent.append(await producer.send_and_wait(settings.topic, None, key=b"k", partition=1))
        await caught_up(db_engine, settings.consumer_group, settings.topic, sent)

        async def scrape() -> Samples:
            return parse((await client.get("/metrics")).text)

        lag = "agent_history_projector_consumer_lag_records"
        seen = await eventually(
            scrape,
            lambda s: [s.get((lag, (("partition", str(p)),))) for p in range(3)] == [0, 0, 0],
            what="a lag of 0 on each of the three partitions",
        )
        healthz, readyz = await client.get("/healthz"), await client.get("/readyz")

    assert seen[("agent_history_projector_events_projected_total", ())] == len(events)
    dead = "agent_history_projector_events_dead_lettered_total"
    assert seen[(dead, (("reason", "invalid_event"),))] == 1
    assert seen[(dead, (("reason", "tombstone"),))] == 1
    assert seen[(dead, (("reason", "unknown_type"),))] == 0
    assert seen[("agent_history_projector_batch_records_sum", ())] == len(events) + 2
    assert seen[("agent_history_projector_batch_apply_duration_seconds_count", ())] >= 1
    age = seen[("agent_history_projector_event_age_seconds_count", ())]
    assert age == len(events), "one newest event per execution"
    fresh = seen[("agent_history_projector_event_age_seconds_bucket", (("le", "60.0"),))]
    assert fresh == age, "projected within a minute of their time"
    assert (healthz.status_code, readyz.status_code) == (200, 200), readyz.text


async def test_the_projector_is_not_ready_before_it_consumes(
    projector_settings: ProjectorSettings,
) -> None:
    from agent_history.server.bootstrap import build_projector

    settings = projector_settings.model_copy(update={"metrics_port": free_port()})
    async with (
        build_projector(settings),
        httpx.AsyncClient(base_url=f"http://127.0.0.1:{settings.metrics_port}") as client,
    ):
        readyz = await client.get("/readyz")
        healthz = await client.get("/healthz")
    assert (healthz.status_code, readyz.status_code) == (200, 503)
    assert readyz.json() == {"status": "unavailable", "reasons": ["not consuming yet"]}


@pytest.mark.usefixtures("projector")
async def test_the_watchdog_port_counts_verdicts_by_reason(
    settings: ProjectorSettings,
    watchdog_settings: WatchdogSettings,
    engine: AsyncEngine,
    producer: Any,
) -> None:
    watchdog_settings = watchdog_settings.model_copy(update={"metrics_port": free_port()})
    lost = Run()
    sent = await send(
        producer,
        settings.topic,
        [lost.event("ExecutionStarted", datetime.now(UTC) - timedelta(seconds=30))],
    )
    await caught_up(engine, settings.consumer_group, settings.topic, sent)
    base = f"http://127.0.0.1:{watchdog_settings.metrics_port}"
    async with watching(watchdog_settings), httpx.AsyncClient(base_url=base) as client:
        await reaches(engine, lost, "timed_out", within=20)
        seen = parse((await client.get("/metrics")).text)
        readyz = await client.get("/readyz")

    verdicts = "agent_history_watchdog_verdicts_total"
    assert seen[(verdicts, (("reason", "worker_lost"),))] == 1
    assert seen[(verdicts, (("reason", "deadline_exceeded"),))] == 0
    assert seen[("agent_history_watchdog_leading", ())] == 1
    assert seen[("agent_history_watchdog_rounds_total", ())] >= 1
    assert readyz.status_code == 200, readyz.text


async def test_the_producer_collector_shows_the_spool(producer_settings: ProducerSettings) -> None:
    registry = CollectorRegistry()
    async with Publisher(producer_settings) as publisher:
        registry.register(SpoolCollector(publisher))
        async with track_execution(uuid.uuid4(), uuid.uuid4(), {"q": 1}, publisher=publisher):
            pass
        assert await publisher.flush(30)
        seen = parse(generate_latest(registry).decode())

    assert seen[("agent_history_producer_events_sent_total", ())] == 2
    assert seen[("agent_history_producer_spool_events", ())] == 0
    assert seen[("agent_history_producer_spool_bytes", ())] == 0
    assert seen[("agent_history_producer_spool_oldest_event_age_seconds", ())] == 0
    assert seen[("agent_history_producer_events_lost_total", ())] == 0
