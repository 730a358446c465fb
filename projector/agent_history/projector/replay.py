"""Replay: rebuild the read model from the start of the topic, then swap it in atomically.

The rebuild goes into tables of the same names in a schema of its own (``replay``), using the
same statements as the live projector (they name tables unqualified; the search path picks
the schema). The API and the live projector keep using the live tables meanwhile. Once loaded,
the rebuild is pruned to the retention, its status counts and rollups are filled in one pass
each and it is given the live table's triggers, which keep them from then on. The swap is one
transaction: it takes the checkpoint table in EXCLUSIVE mode, which waits for the batch a
live projector may be writing and holds off its next one (and an erasure's record); it catches
the rebuild up to the live checkpoints, applies retention and the erasures, and moves the
tables between schemas. Events of erased users are left out throughout (erasure.py). A crash
before the commit leaves the live tables as they were; running replay again starts over.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from aiokafka import AIOKafkaConsumer
from aiokafka.admin import AIOKafkaAdminClient
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from agent_history.projector.announce import announce_everything
from agent_history.projector.checkpoints import hold_off_projectors, read_checkpoints
from agent_history.projector.erasure import all_erased, remove_erased
from agent_history.projector.loader import Loader, Progress, read_from_start
from agent_history.projector.pipeline import collecting_rarely
from agent_history.projector.retention import delete_older_than
from agent_history.projector.settings import ProjectorSettings
from agent_history.projector.shares import Share, load_in_processes, shares_of
from agent_history.projector.store import use_schema
from agent_history.read_model.tables import (
    ROLLUPS,
    agent_executions,
    agents,
    execution_counts_by_agent,
    execution_counts_by_user,
    metadata,
    users,
)

log = logging.getLogger(__name__)

SHADOW = "replay"
_RETIRED = "replay_retired"
_COUNTS = {execution_counts_by_agent: "agent_id", execution_counts_by_user: "user_id"}
_KEPT = (*_COUNTS, *ROLLUPS)
_READ_MODEL = (agents, users, agent_executions, *_KEPT)
# One replay at a time per database (an arbitrary constant key for pg_advisory_lock).
_LOCK_KEY = 0x61676E74


class ReplayError(RuntimeError):
    pass


@dataclass(frozen=True, slots=True)
class ReplayResult:
    events: int
    invalid: int
    executions: int
    # Rows retention deleted: from the loaded rebuild, then in the swap what its catch-up
    # brought back or what aged past the cutoff meanwhile (a run can count twice, as with
    # two prunes and a late event between them).
    pruned: int
    # Events of erased users left out.
    erased: int = 0
    # Seconds the swap held the live projectors (and erasures) off, to its commit.
    held_off: float = 0.0


async def replay(
    settings: ProjectorSettings,
    engine: AsyncEngine,
    consumer: AIOKafkaConsumer,
    progress: Progress | None = None,
    batch_records: int = 20_000,
) -> ReplayResult:
    """Rebuild agent_executions, agents and users from the topic and swap them in.

    ``consumer``, not started yet and in no group, is started here and stopped at the end.
    """
    try:
        async with engine.connect() as lock:
            await _check_migrated(lock)
            if not await lock.scalar(text(f"SELECT pg_try_advisory_lock({_LOCK_KEY})")):
                raise ReplayError("another replay is running against this database")
            live = str(await lock.scalar(text("SELECT current_schema()")))
            await consumer.start()
            tps = await read_from_start(consumer, settings.topic, await _partitions(settings))
            start = await consumer.beginning_offsets(tps)
            end = {tp.partition: o for tp, o in (await consumer.end_offsets(tps)).items()}
            total = sum(end.values()) - sum(start.values())
            loader = Loader(settings, consumer, SHADOW, progress, total, batch_records)
            loader.erased = await all_erased(lock)
            await _create_shadow(engine)
            await _load(settings, engine, loader, end, batch_records)
            async with engine.begin() as conn:
                await use_schema(conn, SHADOW)
                pruned = await _apply_retention(conn, settings)
            await _count_and_keep_counting(engine, live)
            result = await _swap(engine, settings, loader, end, live, pruned)
            await lock.execute(text(f"SELECT pg_advisory_unlock({_LOCK_KEY})"))
            return result
    finally:
        await consumer.stop()


async def _check_migrated(conn: AsyncConnection) -> None:
    """Refuse a database that is not at this code's newest migration: the rebuild's tables are
    the code's, and swapped in they would leave the database at a revision it no longer is."""
    # Here, not at the top: alembic is ~8 MB that the processes importing this module (the
    # projector's, through bootstrap) would otherwise all hold.
    from agent_history.read_model.migrate import head_revision

    at = None
    if await conn.scalar(text("SELECT to_regclass('alembic_version') IS NOT NULL")):
        at = await conn.scalar(text("SELECT version_num FROM alembic_version"))
    if at != (head := head_revision()):
        raise ReplayError(
            f"the database is at migration {at or 'none'}, and this replay builds the tables of "
            f"{head}: migrate it to {head} first (`agent-history migrate`), or replay with the "
            "code that migrated it"
        )


async def _load(
    settings: ProjectorSettings,
    engine: AsyncEngine,
    loader: Loader,
    end: dict[int, int],
    batch_records: int,
) -> None:
    """Into the shadow, up to ``end``: by loader processes over shares of the partitions
    (shares.py), or by ``loader`` in this process."""
    shares = shares_of(end, settings.replay_workers)
    if len(shares) < 2:
        with collecting_rarely():
            await loader.load(engine, end)
    else:
        work = [Share(settings, until, loader.erased, SHADOW, batch_records) for until in shares]
        await load_in_processes(work, loader.count)
    # The swap's catch-up reads on from where the load stopped: the end offsets, not where
    # this process's consumer got to (its last fetch may have gone past them, and what it
    # fetched there was left out).
    loader.skip_to(end)


async def _partitions(settings: ProjectorSettings) -> list[int]:
    admin = AIOKafkaAdminClient(bootstrap_servers=settings.kafka_bootstrap_servers)
    await admin.start()
    try:
        (described,) = await admin.describe_topics([settings.topic])
    finally:
        await admin.close()
    if described["error_code"] != 0 or not described["partitions"]:
        raise ReplayError(f"topic {settings.topic!r} does not exist")
    return sorted(p["partition"] for p in described["partitions"])


async def _create_shadow(engine: AsyncEngine) -> None:
    async with engine.begin() as conn:
        await conn.execute(text(f"DROP SCHEMA IF EXISTS {SHADOW} CASCADE"))
        await conn.execute(text(f"CREATE SCHEMA {SHADOW}"))
        shadow = await conn.execution_options(schema_translate_map={None: SHADOW})
        await shadow.run_sync(metadata.create_all, tables=list(_READ_MODEL))


async def _apply_retention(conn: AsyncConnection, settings: ProjectorSettings) -> int:
    """Delete the runs on the search path older than the retention (if any); how many went."""
    if settings.retention_days is None:
        return 0
    cutoff = datetime.now(UTC) - timedelta(days=settings.retention_days)
    return await delete_older_than(conn, cutoff, limit=2**62)


async def _count_and_keep_counting(engine: AsyncEngine, live: str) -> None:
    """Fill the shadow's status counts and rollups in one pass each, then give its
    agent_executions the live table's triggers that keep them (their one definition is the
    migrations': the rollups are filled by migration 0006's fill_execution_rollups(), which
    reads the shadow's agent_executions through the search path).

    Before the swap, not in it: the fill's time grows with the runs kept, and the swap holds
    the live projectors off (docs/benchmarks.md, fifteenth round). The counts and the rollups
    are filled side by side, each in a transaction of its own; the triggers come after both,
    and keep them through the swap's catch-up, erasures and retention."""

    async def count() -> None:
        async with engine.begin() as conn:
            for table, key in _COUNTS.items():
                await conn.execute(
                    text(
                        f"INSERT INTO {SHADOW}.{table.name} ({key}, status, n) SELECT {key}, "
                        f"status, count(*) FROM {SHADOW}.agent_executions GROUP BY 1, 2"
                    )
                )

    async def roll_up() -> None:
        async with engine.begin() as conn:
            await use_schema(conn, SHADOW)
            await conn.execute(text(f"SELECT {live}.fill_execution_rollups()"))

    async with asyncio.TaskGroup() as fills:  # one failing cancels the other
        fills.create_task(count())
        fills.create_task(roll_up())
    on_live, on_shadow = f" ON {live}.agent_executions ", f" ON {SHADOW}.agent_executions "
    async with engine.begin() as conn:
        triggers = await conn.scalars(
            text(
                "SELECT pg_get_triggerdef(oid) FROM pg_trigger "
                "WHERE tgrelid = CAST(:table AS regclass) AND NOT tgisinternal"
            ),
            {"table": f"{live}.agent_executions"},
        )
        for definition in triggers.all():
            if on_live not in definition:
                raise ReplayError(f"unexpected trigger definition: {definition}")
            await conn.execute(text(definition.replace(on_live, on_shadow)))


async def _swap(
    engine: AsyncEngine,
    settings: ProjectorSettings,
    loader: Loader,
    loaded: dict[int, int],
    live: str,
    pruned: int,
) -> ReplayResult:
    """Catch the shadow up, apply what came meanwhile and swap it in, holding the live
    projectors off. The shadow's triggers keep its counts and rollups through these writes."""
    async with engine.begin() as conn:
        holding = time.monotonic()
        await hold_off_projectors(conn)
        applied = await read_checkpoints(conn, settings.consumer_group, settings.topic)
        # What the live projection has applied since the rebuild read its end offsets.
        until = {p: max(loaded.get(p, 0), o) for p, o in applied.items()}
        # Erasures wait for this lock too: those recorded during the rebuild are applied here.
        loader.erased = await all_erased(conn)
        await use_schema(conn, SHADOW)
        await loader.load_in(conn, {**loaded, **until})
        await remove_erased(conn, loader.erased)
        # What aged past the retention since the shadow was pruned, or came since.
        pruned += await _apply_retention(conn, settings)
        # Kept exact by the triggers; a count(*) would read every row while projectors wait.
        query = f"SELECT COALESCE(sum(n), 0) FROM {execution_counts_by_agent.name}"
        executions = int(await conn.scalar(text(query)))
        await use_schema(conn, live)
        # In the order readers take them (FROM agent_executions JOIN agents JOIN users), so a
        # reader and the swap never wait for each other in a circle.
        names = ", ".join(f"{live}.{t.name}" for t in (agent_executions, agents, users, *_KEPT))
        await conn.execute(text(f"LOCK TABLE {names} IN ACCESS EXCLUSIVE MODE"))
        await conn.execute(text(f"DROP SCHEMA IF EXISTS {_RETIRED} CASCADE"))
        await conn.execute(text(f"CREATE SCHEMA {_RETIRED}"))
        for table in _READ_MODEL:
            await conn.execute(text(f"ALTER TABLE {live}.{table.name} SET SCHEMA {_RETIRED}"))
            await conn.execute(text(f"ALTER TABLE {SHADOW}.{table.name} SET SCHEMA {live}"))
        await conn.execute(text(f"DROP SCHEMA {_RETIRED} CASCADE"))
        await conn.execute(text(f"DROP SCHEMA {SHADOW} CASCADE"))
        # The API's streams learn of the new tables with the commit, and reload.
        await announce_everything(conn)
    held_off = time.monotonic() - holding
    log.info(
        "replayed %d events into %d executions and swapped them in, holding the live "
        "projectors off for %.2f s",
        loader.events,
        executions,
        held_off,
    )
    return ReplayResult(loader.events, loader.invalid, executions, pruned, loader.dropped, held_off)
