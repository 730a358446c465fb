"""Alembic environment: migrates the database named by AGENT_HISTORY_DATABASE_URL.

`agent-history migrate` passes the URL in through the config; plain `alembic` reads settings.
"""

from __future__ import annotations

import asyncio

from alembic import context
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import create_async_engine

from agent_history.read_model.db import DatabaseSettings
from agent_history.read_model.tables import metadata

config = context.config


def _url() -> str:
    return config.get_main_option("sqlalchemy.url") or DatabaseSettings().database_url


def _migrate(connection: Connection) -> None:
    context.configure(connection=connection, target_metadata=metadata, compare_type=True)
    with context.begin_transaction():
        context.run_migrations()


async def _run_online() -> None:
    engine = create_async_engine(_url())
    try:
        async with engine.connect() as connection:
            await connection.run_sync(_migrate)
    finally:
        await engine.dispose()


if context.is_offline_mode():
    context.configure(url=_url(), target_metadata=metadata, literal_binds=True)
    with context.begin_transaction():
        context.run_migrations()
else:
    asyncio.run(_run_online())
