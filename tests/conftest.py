"""Fixtures on the real services: a Kafka broker and PostgreSQL.

Where they come from is decided once per session (tests/service_choice.py): the servers that
AGENT_HISTORY_KAFKA_BOOTSTRAP_SERVERS and AGENT_HISTORY_DATABASE_URL name; else containers
(tests/containers.py) when a Docker engine answers; else the local processes of
`agent-history services`, started when not running. Tests that stop and restart a service run
on the local processes whatever was chosen (`local_services`). Each session migrates a
database of its own; each test gets its own topic and consumer group, so tests never see each
other's data.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import asyncpg
import pytest
from aiokafka import AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine

from agent_history import devservices as services
from agent_history.api.settings import ApiSettings
from agent_history.devservices.settings import ServicesSettings
from agent_history.producer.settings import ProducerSettings
from agent_history.projector.settings import ProjectorSettings
from agent_history.read_model.db import make_engine
from agent_history.read_model.migrate import migrate
from agent_history.server.bootstrap import build_projector
from tests.service_choice import Choice, choose_services

# No metrics port for the projectors and watchdogs of tests (many run at once, here and in
# other sessions on the machine); the tests of the port pick a free one.
os.environ.setdefault("AGENT_HISTORY_METRICS_PORT", "0")

_CHOICE = pytest.StashKey[Choice]()
_log = logging.getLogger("tests.services")
_log.setLevel(logging.INFO)  # pytest keeps the choice with a failing test's captured log


@pytest.fixture(scope="session")
def service_urls(request: pytest.FixtureRequest) -> Iterator[tuple[str, str]]:
    """(kafka bootstrap servers, admin database url) of the services this session tests on."""
    from tests import containers

    choice = choose_services(os.environ, containers.docker_answers)
    request.config.stash[_CHOICE] = choice
    _log.info("integration services: %s", choice.describe())
    kafka, database = choice.kafka, choice.database
    with contextlib.ExitStack() as stack:
        if choice.source == "containers":
            kafka = kafka or stack.enter_context(containers.kafka_container())
            database = database or stack.enter_context(containers.postgres_container())
        elif choice.source == "local":
            status = services.up(ServicesSettings())
            kafka = kafka or status.kafka_bootstrap_servers
            database = database or status.database_url
        assert kafka is not None, choice
        assert database is not None, choice
        yield kafka, database


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    choice = terminalreporter.config.stash.get(_CHOICE, None)
    if choice is not None:
        terminalreporter.write_line(f"integration services: {choice.describe()}")


@pytest.fixture(scope="session")
def local_services() -> ServicesSettings:
    """The local Kafka and PostgreSQL processes, started when not running: the services that a
    test may stop and restart. A container or a server named in the environment is not one."""
    settings = ServicesSettings()
    services.up(settings)
    return settings


@pytest.fixture(scope="session")
def kafka_bootstrap(service_urls: tuple[str, str]) -> str:
    return service_urls[0]


def _admin_dsn(url: str) -> str:
    return (
        make_url(url)
        .set(drivername="postgresql", database="postgres")
        .render_as_string(hide_password=False)
    )


async def _sql(admin_url: str, statement: str) -> None:
    conn = await asyncpg.connect(_admin_dsn(admin_url))
    try:
        await conn.execute(statement)
    finally:
        await conn.close()


@contextlib.contextmanager
def fresh_database(admin_url: str) -> Iterator[str]:
    """A new database on the server of ``admin_url``, migrated; dropped afterwards."""
    name = f"agent_history_test_{uuid.uuid4().hex[:12]}"
    asyncio.run(_sql(admin_url, f'CREATE DATABASE "{name}"'))
    try:
        url = make_url(admin_url).set(database=name).render_as_string(hide_password=False)
        migrate(ApiSettings(database_url=url))
        yield url
    finally:
        asyncio.run(_drop(admin_url, name))


async def _drop(admin_url: str, name: str) -> None:
    # FORCE terminates the database's sessions, and refuses (for a role that is not a
    # superuser) while an autovacuum worker happens to be in it: that worker is gone a
    # moment later, so the drop is tried again.
    for attempt in range(50):
        try:
            await _sql(admin_url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            return
        except asyncpg.exceptions.InsufficientPrivilegeError:
            if attempt == 49:
                raise
            await asyncio.sleep(0.1)


@pytest.fixture(scope="session")
def database_url(service_urls: tuple[str, str]) -> Iterator[str]:
    """A database of this test session's own, migrated to the newest revision."""
    with fresh_database(service_urls[1]) as url:
        yield url


@pytest.fixture(scope="session")
def api_settings(database_url: str) -> ApiSettings:
    return ApiSettings(database_url=database_url)


@pytest.fixture(scope="session")
async def db_engine(database_url: str) -> AsyncIterator[AsyncEngine]:
    engine = make_engine(ApiSettings(database_url=database_url))
    yield engine
    await engine.dispose()


@pytest.fixture
async def topic(kafka_bootstrap: str) -> AsyncIterator[str]:
    """A fresh event topic with three partitions (and its dead-letter topic)."""
    name = f"test-executions-{uuid.uuid4().hex[:12]}"
    admin = AIOKafkaAdminClient(bootstrap_servers=kafka_bootstrap)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(name, 3, 1), NewTopic(f"{name}.dlq", 1, 1)])
        yield name
        await admin.delete_topics([name, f"{name}.dlq"])
    finally:
        await admin.close()


@pytest.fixture
def projector_settings(kafka_bootstrap: str, database_url: str, topic: str) -> ProjectorSettings:
    return ProjectorSettings(
        kafka_bootstrap_servers=kafka_bootstrap,
        database_url=database_url,
        topic=topic,
        dlq_topic=f"{topic}.dlq",
        topic_partitions=3,
        consumer_group=f"test-projector-{uuid.uuid4().hex[:12]}",
        batch_max_records=500,
    )


@pytest.fixture
async def producer(kafka_bootstrap: str) -> AsyncIterator[Any]:
    """A plain aiokafka producer, to write records as any other client would."""
    p = AIOKafkaProducer(bootstrap_servers=kafka_bootstrap, acks="all")
    await p.start()
    yield p
    await p.stop()


@pytest.fixture
def producer_settings(kafka_bootstrap: str, topic: str, tmp_path: Path) -> ProducerSettings:
    """The test's topic, and a spool folder of its own."""
    return ProducerSettings(
        kafka_bootstrap_servers=kafka_bootstrap, topic=topic, linger_ms=0, spool_dir=tmp_path
    )


@contextlib.asynccontextmanager
async def projecting(settings: ProjectorSettings) -> AsyncIterator[None]:
    """The projector, wired as `agent-history projector` wires it, running in this event loop."""
    stop, started = asyncio.Event(), asyncio.Event()
    async with build_projector(settings) as project:
        task = asyncio.create_task(project(stop, started))
        waiting = asyncio.create_task(started.wait())
        await asyncio.wait([task, waiting], timeout=60, return_when=asyncio.FIRST_COMPLETED)
        if task.done():
            task.result()  # raises what stopped the projector from starting
        assert started.is_set(), "the projector did not start within 60 s"
        try:
            yield
        finally:
            stop.set()
            await asyncio.wait_for(task, timeout=30)


@pytest.fixture
async def running_projector(projector_settings: ProjectorSettings) -> AsyncIterator[None]:
    """The projector, running in this event loop for the duration of the test."""
    async with projecting(projector_settings):
        yield
