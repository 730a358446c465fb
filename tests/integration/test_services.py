"""The local services: a real Kafka broker and PostgreSQL server, started, reused and restarted.

Every test leaves both services running: other test modules and the developer keep using them.
"""

from __future__ import annotations

import asyncio
import time
import uuid

import asyncpg
import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from agent_history import devservices as services
from agent_history.devservices import kafka, postgres
from agent_history.devservices.settings import ServicesSettings

pytestmark = pytest.mark.integration

_READ_TIMEOUT_S = 30.0


@pytest.fixture(scope="module")
def settings() -> ServicesSettings:
    return ServicesSettings()


@pytest.fixture(scope="module")
def running(settings: ServicesSettings) -> services.ServicesStatus:
    return services.up(settings)


def _unique(prefix: str) -> str:
    return f"{prefix}_{uuid.uuid4().hex[:12]}"


def _dsn(status: services.ServicesStatus) -> str:
    """asyncpg takes the SQLAlchemy URL without its driver suffix."""
    return status.database_url.replace("postgresql+asyncpg://", "postgresql://", 1)


async def _produce(bootstrap: str, topic: str, values: list[bytes]) -> None:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(topic, num_partitions=1, replication_factor=1)])
    finally:
        await admin.close()
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all")
    await producer.start()
    try:
        for value in values:
            await producer.send_and_wait(topic, value)
    finally:
        await producer.stop()


async def _read_topic(bootstrap: str, topic: str, expected: int) -> list[bytes]:
    """Read the single partition from the beginning until `expected` records arrive."""
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap, enable_auto_commit=False, auto_offset_reset="earliest"
    )
    await consumer.start()
    seen: list[bytes] = []
    try:
        consumer.assign([TopicPartition(topic, 0)])
        await consumer.seek_to_beginning()
        deadline = time.monotonic() + _READ_TIMEOUT_S
        while len(seen) < expected and time.monotonic() < deadline:
            batches = await consumer.getmany(timeout_ms=500)
            seen += [record.value for records in batches.values() for record in records]
    finally:
        await consumer.stop()
    assert len(seen) >= expected, f"expected {expected} records on {topic}, saw {seen}"
    return seen


def test_status_after_up_reports_both_running(
    settings: ServicesSettings, running: services.ServicesStatus
) -> None:
    current = services.status(settings)

    assert current.all_running, current.describe()
    assert current.kafka_pid == running.kafka_pid
    assert current.postgres_pid == running.postgres_pid
    assert current.kafka_bootstrap_servers == f"127.0.0.1:{settings.kafka_port}"
    assert current.env_lines() == [
        f"AGENT_HISTORY_KAFKA_BOOTSTRAP_SERVERS={current.kafka_bootstrap_servers}",
        f"AGENT_HISTORY_DATABASE_URL={current.database_url}",
    ]


def test_up_again_reuses_the_running_services(
    settings: ServicesSettings, running: services.ServicesStatus
) -> None:
    before = services.status(settings)
    started = time.monotonic()

    again = services.up(settings)

    assert time.monotonic() - started < 15, "a second `up` should not install or start anything"
    assert (again.kafka_pid, again.postgres_pid) == (before.kafka_pid, before.postgres_pid)
    assert again.all_running, again.describe()


async def test_kafka_round_trips_a_message(running: services.ServicesStatus) -> None:
    topic = _unique("services_round_trip")

    await _produce(running.kafka_bootstrap_servers, topic, [b"hello"])

    assert await _read_topic(running.kafka_bootstrap_servers, topic, 1) == [b"hello"]


async def test_postgres_accepts_the_project_role(running: services.ServicesStatus) -> None:
    conn = await asyncpg.connect(_dsn(running))
    try:
        row = await conn.fetchrow(
            "SELECT current_user AS role, current_database() AS db,"
            " (SELECT rolcreatedb FROM pg_roles WHERE rolname = current_user) AS can_create_db"
        )
    finally:
        await conn.close()

    assert dict(row) == {"role": "agent_history", "db": "agent_history", "can_create_db": True}


async def test_kafka_restart_alone_keeps_messages(
    settings: ServicesSettings, running: services.ServicesStatus
) -> None:
    topic = _unique("services_restart")
    await _produce(running.kafka_bootstrap_servers, topic, [b"before restart"])

    await asyncio.to_thread(kafka.stop, settings)
    try:
        stopped = services.status(settings)
        assert (stopped.kafka_running, stopped.kafka_pid) == (False, None), stopped.describe()
        assert stopped.postgres_running, "stopping Kafka must leave PostgreSQL running"
    finally:
        await asyncio.to_thread(kafka.start, settings)

    await _produce(running.kafka_bootstrap_servers, topic, [b"after restart"])
    assert await _read_topic(running.kafka_bootstrap_servers, topic, 2) == [
        b"before restart",
        b"after restart",
    ]


async def test_postgres_restart_alone_keeps_rows(
    settings: ServicesSettings, running: services.ServicesStatus
) -> None:
    # Its own database, which also proves the role may create databases.
    database = _unique("services_restart")
    admin = await asyncpg.connect(_dsn(running))
    await admin.execute(f'CREATE DATABASE "{database}"')
    own_dsn = _dsn(running).rsplit("/", 1)[0] + f"/{database}"
    conn = await asyncpg.connect(own_dsn)
    await conn.execute("CREATE TABLE kept (value text); INSERT INTO kept VALUES ('before restart')")
    await conn.close()
    await admin.close()

    await asyncio.to_thread(postgres.stop, settings)
    try:
        stopped = services.status(settings)
        assert (stopped.postgres_running, stopped.postgres_pid) == (False, None)
        assert stopped.kafka_running, "stopping PostgreSQL must leave Kafka running"
    finally:
        await asyncio.to_thread(postgres.start, settings)

    conn = await asyncpg.connect(own_dsn)
    try:
        assert await conn.fetchval("SELECT value FROM kept") == "before restart"
    finally:
        await conn.close()
    admin = await asyncpg.connect(_dsn(running))
    await admin.execute(f'DROP DATABASE "{database}"')
    await admin.close()
