"""A benchmark's own database and topics on the shared services, and what machine this is."""

from __future__ import annotations

import asyncio
import os
import platform
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

import asyncpg
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from sqlalchemy.engine import make_url

from agent_history.contract.settings import LOCAL_KAFKA
from agent_history.devservices.settings import ServicesSettings
from agent_history.projector.settings import ProjectorSettings
from agent_history.read_model.db import LOCAL_DATABASE_URL, DatabaseSettings
from agent_history.read_model.migrate import migrate

PARTITIONS = 6


def asyncpg_dsn(url: str) -> str:
    """The asyncpg DSN of a SQLAlchemy URL."""
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


@dataclass(frozen=True)
class Bench:
    """Names of this run's own database, topics and consumer groups."""

    kafka: str
    admin_url: str  # SQLAlchemy URL of the server's admin database (any existing one)
    run: str

    @property
    def database_url(self) -> str:
        return make_url(self.admin_url).set(database=f"bench_{self.run}").render_as_string(False)

    def dsn(self, url: str | None = None) -> str:
        """The asyncpg DSN of a SQLAlchemy URL (default: this run's database)."""
        return asyncpg_dsn(url or self.database_url)

    def topic(self, purpose: str) -> str:
        return f"bench-{self.run}-{purpose}"

    def projector_settings(self, purpose: str, **overrides: object) -> ProjectorSettings:
        topic = self.topic(purpose)
        return ProjectorSettings(
            kafka_bootstrap_servers=self.kafka,
            database_url=self.database_url,
            topic=topic,
            dlq_topic=f"{topic}.dlq",
            topic_partitions=PARTITIONS,
            consumer_group=f"bench-{self.run}-{purpose}",
            **overrides,  # type: ignore[arg-type]
        )


def from_environment() -> Bench:
    return Bench(
        kafka=os.environ.get("AGENT_HISTORY_KAFKA_BOOTSTRAP_SERVERS", LOCAL_KAFKA),
        admin_url=os.environ.get("AGENT_HISTORY_DATABASE_URL", LOCAL_DATABASE_URL),
        run=uuid.uuid4().hex[:10],
    )


async def _admin_sql(bench: Bench, statement: str) -> None:
    conn = await asyncpg.connect(bench.dsn(bench.admin_url))
    try:
        await conn.execute(statement)
    finally:
        await conn.close()


async def create_database(bench: Bench, url: str) -> None:
    """Create and migrate the database of ``url`` (a name of this run's own)."""
    await _admin_sql(bench, f'CREATE DATABASE "{make_url(url).database}"')
    await asyncio.to_thread(migrate, DatabaseSettings(database_url=url))


async def drop_database(bench: Bench, url: str, attempts: int = 30) -> None:
    """Drop it, retrying while the server restarts or an autovacuum worker holds it."""
    statement = f'DROP DATABASE IF EXISTS "{make_url(url).database}" WITH (FORCE)'
    for attempt in range(attempts):
        try:
            await _admin_sql(bench, statement)
            return
        except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError):
            if attempt == attempts - 1:
                raise
            await asyncio.sleep(2)


@asynccontextmanager
async def topics(bench: Bench, *purposes: str) -> AsyncIterator[None]:
    """This run's event topics (and dead-letter topics), deleted afterwards."""
    names = [n for p in purposes for n in (bench.topic(p), f"{bench.topic(p)}.dlq")]
    admin = AIOKafkaAdminClient(bootstrap_servers=bench.kafka)
    await admin.start()
    try:
        await admin.create_topics(
            [NewTopic(n, 1 if n.endswith(".dlq") else PARTITIONS, 1) for n in names]
        )
        yield
    finally:
        try:
            await admin.delete_topics(names)
        finally:
            await admin.close()


async def end_offsets(bench: Bench, topic: str) -> dict[int, int]:
    consumer = AIOKafkaConsumer(bootstrap_servers=bench.kafka)
    await consumer.start()
    try:
        tps = [TopicPartition(topic, p) for p in range(PARTITIONS)]
        return {tp.partition: offset for tp, offset in (await consumer.end_offsets(tps)).items()}
    finally:
        await consumer.stop()


async def describe_machine(bench: Bench) -> str:
    """Cores, RAM, Python, PostgreSQL (with the settings that matter here) and Kafka."""
    ram = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    conn = await asyncpg.connect(bench.dsn(bench.admin_url))
    try:
        pg = await conn.fetchval("SHOW server_version")
        knobs = {
            k: await conn.fetchval(f"SHOW {k}")
            for k in ("shared_buffers", "synchronous_commit", "max_wal_size")
        }
    finally:
        await conn.close()
    settings = ", ".join(f"{k}={v}" for k, v in knobs.items())
    return (
        f"{os.cpu_count()} cores ({platform.processor() or platform.machine()}), "
        f"{ram:.0f} GiB RAM, Linux {platform.release()}; Python {platform.python_version()}; "
        f"PostgreSQL {pg} ({settings}); Kafka {_kafka_version(bench)} (single KRaft node); "
        "broker, database and benchmark on the same machine"
    )


def _kafka_version(bench: Bench) -> str:
    local = ServicesSettings()
    if bench.kafka == f"127.0.0.1:{local.kafka_port}":
        return local.kafka_version
    return "(unknown: not the local services broker)"
