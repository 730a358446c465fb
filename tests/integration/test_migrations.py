"""The Alembic migrations and the models in agent_history/read_model/tables.py agree, and the
migrations that change a layout convert the data in it both ways."""

from __future__ import annotations

import asyncio

import pytest
from alembic import command
from hypothesis import given, settings
from hypothesis import strategies as st
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from agent_history.read_model.db import DatabaseSettings, make_engine
from agent_history.read_model.migrate import alembic_config, revision_module
from agent_history.read_model.tables import metadata
from tests.conftest import fresh_database
from tests.support import assert_rollups_match_rows

pytestmark = pytest.mark.integration


def test_models_and_migrations_agree(database_url: str) -> None:
    # Raises when autogenerate would find any difference between the models and the database.
    command.check(alembic_config(DatabaseSettings(database_url=database_url)))


def test_every_migration_downgrades_and_upgrades_again(service_urls: tuple[str, str]) -> None:
    with fresh_database(service_urls[1]) as url:
        config = alembic_config(DatabaseSettings(database_url=url))
        command.downgrade(config, "base")
        command.upgrade(config, "head")
        command.check(config)


_GENERATED = text("""
SELECT pg_get_expr(d.adbin, d.adrelid)
FROM pg_attrdef d
JOIN pg_attribute a ON a.attrelid = d.adrelid AND a.attnum = d.adnum
WHERE d.adrelid = CAST(:table AS regclass) AND a.attname = 'execution_time_ms'
""")
_STORAGE = text("""
SELECT c.relname, c.reloptions FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE n.nspname = :schema AND c.relkind = 'r' AND c.relname = ANY(CAST(:tables AS text[]))
ORDER BY c.relname
""")


async def test_generated_columns_and_storage_are_the_same_in_models_and_migrations(
    db_engine: AsyncEngine,
) -> None:
    # alembic check compares neither generated-column expressions nor storage parameters:
    # tables.py (what replay builds its tables from) and the migrations (what every live
    # database has) are compared here, both as PostgreSQL parsed them: EXECUTION_TIME_MS_SQL
    # and migration 0001's copy, the rollups' fillfactor and the sketches' toast_tuple_target.
    tables = sorted(metadata.tables)
    async with db_engine.begin() as conn:
        await conn.execute(text("CREATE SCHEMA models_check"))
        try:
            await conn.execute(text("SET LOCAL search_path TO models_check"))
            await conn.run_sync(metadata.create_all)
            from_models = await conn.scalar(_GENERATED, {"table": "models_check.agent_executions"})
            from_migrations = await conn.scalar(_GENERATED, {"table": "public.agent_executions"})
            storage = {
                schema: (await conn.execute(_STORAGE, {"schema": schema, "tables": tables})).all()
                for schema in ("models_check", "public")
            }
        finally:
            await conn.execute(text("DROP SCHEMA models_check CASCADE"))
    assert from_models is not None
    assert from_models == from_migrations
    assert len(storage["public"]) == len(tables)
    assert ("execution_rollups", ["fillfactor=70"]) in storage["public"]
    assert storage["models_check"] == storage["public"]


_OLD_SKETCHES = """
SELECT agent_id, period, bucket_start, model, status, bucket, n
FROM execution_duration_sketches WHERE n <> 0
"""
_OLD_SKETCHED = """
SELECT agent_id, p.period, date_trunc(p.period, execution_start, 'UTC'), COALESCE(model, ''),
    status, execution_duration_bucket(execution_time_ms), count(*)
FROM agent_executions CROSS JOIN (VALUES ('hour'), ('day'), ('month')) AS p(period)
WHERE execution_time_ms IS NOT NULL GROUP BY 1, 2, 3, 4, 5, 6
"""


async def _runs_then_some_gone(url: str) -> None:
    """Runs of two agents over a few days (some without a duration, some of 0 ms), then a
    delete, so that migration 0006's sketch holds rows whose counts fell to zero."""
    engine = make_engine(DatabaseSettings(database_url=url))
    try:
        async with engine.begin() as conn:
            await conn.execute(
                text(
                    "INSERT INTO agents (id, name) SELECT gen_random_uuid(), 'a' || i "
                    "FROM generate_series(1, 2) i; "
                )
            )
            await conn.execute(text("INSERT INTO users (id, name) VALUES (gen_random_uuid(), 'u')"))
            await conn.execute(
                text(
                    "INSERT INTO agent_executions (id, agent_id, user_id, status, "
                    "execution_start, execution_end, input_rank, model) "
                    "SELECT gen_random_uuid(), a.id, u.id, (ARRAY['completed', 'failed', "
                    "'running'])[1 + i % 3], TIMESTAMPTZ '2025-01-01' + i * interval '37 minutes', "
                    "CASE WHEN i % 3 <> 2 THEN TIMESTAMPTZ '2025-01-01' + i * interval "
                    "'37 minutes' + (i * i % 5000) * interval '1 millisecond' END, 0, "
                    "(ARRAY['m1', 'm2', NULL])[1 + i % 5 % 3] "
                    "FROM generate_series(0, 399) i, agents a, users u"
                )
            )
            await conn.execute(text("DELETE FROM agent_executions WHERE random() < 0.3"))
    finally:
        await engine.dispose()


async def _old_sketches_match_rows(url: str) -> None:
    engine = make_engine(DatabaseSettings(database_url=url))
    try:
        async with engine.connect() as conn:
            have = {tuple(r) for r in await conn.execute(text(_OLD_SKETCHES))}
            want = {tuple(r) for r in await conn.execute(text(_OLD_SKETCHED))}
        assert have, "the runs left no sketch"
        assert have == want, f"kept-only {have - want}, rows-only {want - have}"
    finally:
        await engine.dispose()


async def _rollups_match_rows(url: str) -> None:
    engine = make_engine(DatabaseSettings(database_url=url))
    try:
        await assert_rollups_match_rows(engine)
    finally:
        await engine.dispose()


def test_the_sketch_arrays_are_converted_from_the_old_sketch_and_back(
    service_urls: tuple[str, str],
) -> None:
    with fresh_database(service_urls[1]) as url:
        config = alembic_config(DatabaseSettings(database_url=url))
        command.downgrade(config, "0009")
        asyncio.run(_runs_then_some_gone(url))
        asyncio.run(_old_sketches_match_rows(url))
        command.upgrade(config, "head")
        asyncio.run(_rollups_match_rows(url))
        command.downgrade(config, "0009")
        asyncio.run(_old_sketches_match_rows(url))


def test_the_sketches_by_status_are_filled_kept_and_dropped(
    service_urls: tuple[str, str],
) -> None:
    with fresh_database(service_urls[1]) as url:
        config = alembic_config(DatabaseSettings(database_url=url))
        command.downgrade(config, "0015")
        asyncio.run(_runs_then_some_gone(url))
        functions = asyncio.run(_functions(url))
        command.upgrade(config, "head")
        asyncio.run(_rollups_match_rows(url))  # filled from the rows
        asyncio.run(_runs_end(url))
        asyncio.run(_rollups_match_rows(url))  # kept by the trigger
        command.downgrade(config, "0015")
        # The table is gone, the functions are 0015's again, and the same writes go through.
        assert asyncio.run(_functions(url)) == functions
        asyncio.run(_runs_end(url, sketched_by_status=False))


async def _functions(url: str) -> list[str]:
    engine = make_engine(DatabaseSettings(database_url=url))
    try:
        async with engine.connect() as conn:
            defined = text(
                "SELECT pg_get_functiondef(CAST(f AS regproc)) FROM unnest(ARRAY["
                "'roll_up_executions', 'fill_execution_rollups']) AS f"
            )
            return list((await conn.execute(defined)).scalars())
    finally:
        await engine.dispose()


async def _runs_end(url: str, sketched_by_status: bool = True) -> None:
    """A fifth of the runs back to running, then every running run ends, half as failed,
    through an upsert as the projector writes."""
    engine = make_engine(DatabaseSettings(database_url=url))
    try:
        async with engine.begin() as conn:
            table = text("SELECT to_regclass('execution_duration_sketches_by_status')")
            assert (await conn.scalar(table) is not None) == sketched_by_status
            await conn.execute(
                text("UPDATE agent_executions SET status = 'running' WHERE random() < 0.2")
            )
            ended = await conn.execute(
                text(
                    "INSERT INTO agent_executions AS t (id, agent_id, user_id, status, "
                    "execution_start, execution_end, input_rank) "
                    "SELECT id, agent_id, user_id, (ARRAY['completed', 'failed'])[1 + i % 2], "
                    "execution_start, execution_start + i * interval '3 milliseconds', 0 "
                    "FROM (SELECT *, row_number() OVER (ORDER BY id) AS i FROM agent_executions "
                    "WHERE status = 'running') r "
                    "ON CONFLICT (id) DO UPDATE SET status = EXCLUDED.status, "
                    "execution_end = EXCLUDED.execution_end"
                )
            )
            assert ended.rowcount > 0
    finally:
        await engine.dispose()


_ADDED = text("""
SELECT (a).lo, (a).counts, (b).lo, (b).counts FROM (
    SELECT add_duration_buckets(:lo, :counts, :buckets, :ns) AS a,
           pg_temp.add_duration_buckets_0010(:lo, :counts, :buckets, :ns) AS b) AS both_ways
""")


@st.composite
def _additions(draw: st.DrawFn) -> dict[str, object]:
    """A stored array (trimmed, or empty) and buckets to add to it, removals and all."""
    counts = draw(st.lists(st.integers(0, 5), max_size=12))
    if counts:
        counts[0], counts[-1] = counts[0] or 1, counts[-1] or 1
    lo = draw(st.integers(-1, 40))
    buckets = draw(st.lists(st.integers(-1, 60), min_size=1, max_size=8, unique=True))
    # Removals take away no more than a bucket holds (as a run's old row does).
    held = {lo + i: n for i, n in enumerate(counts)}
    ns = [draw(st.integers(-held.get(b, 0), 4).filter(lambda n: n != 0)) for b in buckets]
    return {"lo": lo, "counts": counts, "buckets": buckets, "ns": ns}


@settings(max_examples=300, deadline=None)
@given(cases=st.lists(_additions(), min_size=1, max_size=20))
def test_0012s_add_duration_buckets_gives_0010s_results(
    cases: list[dict[str, object]], database_url: str
) -> None:
    asyncio.run(_added_both_ways(database_url, cases))


async def _added_both_ways(url: str, cases: list[dict[str, object]]) -> None:
    engine = make_engine(DatabaseSettings(database_url=url))
    old = revision_module("0010_sketch_arrays.py")._ADD_FUNCTION.replace(
        "FUNCTION add_duration_buckets", "FUNCTION pg_temp.add_duration_buckets_0010", 1
    )
    try:
        async with engine.begin() as conn:
            await conn.execute(text(old))
            for case in cases:
                new_lo, new_counts, old_lo, old_counts = (await conn.execute(_ADDED, case)).one()
                assert (new_lo, new_counts) == (old_lo, old_counts), case
    finally:
        await engine.dispose()
