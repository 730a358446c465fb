"""The Alembic migrations and the models in agent_history/read_model/tables.py agree."""

from __future__ import annotations

import pytest
from alembic import command
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from agent_history.read_model.db import DatabaseSettings
from agent_history.read_model.migrate import alembic_config
from agent_history.read_model.tables import metadata
from tests.conftest import fresh_database

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


async def test_the_generated_duration_is_the_same_in_models_and_migrations(
    db_engine: AsyncEngine,
) -> None:
    # alembic check does not compare generated-column expressions: tables.py's
    # EXECUTION_TIME_MS_SQL (what replay builds its tables from) and migration 0001's copy
    # (what every live database has) are compared here, both as PostgreSQL parsed them.
    async with db_engine.begin() as conn:
        await conn.execute(text("CREATE SCHEMA models_check"))
        try:
            await conn.execute(text("SET LOCAL search_path TO models_check"))
            await conn.run_sync(metadata.create_all)
            from_models = await conn.scalar(_GENERATED, {"table": "models_check.agent_executions"})
            from_migrations = await conn.scalar(_GENERATED, {"table": "public.agent_executions"})
        finally:
            await conn.execute(text("DROP SCHEMA models_check CASCADE"))
    assert from_models is not None
    assert from_models == from_migrations
