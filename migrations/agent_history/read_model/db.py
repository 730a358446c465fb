"""The database settings and engine, built from settings at the edge."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from agent_history.contract.settings import SettingsBase

LOCAL_DATABASE_URL = (
    "postgresql+asyncpg://agent_history:agent_history@127.0.0.1:15432/agent_history"
)


class DatabaseSettings(SettingsBase):
    database_url: str = LOCAL_DATABASE_URL
    database_pool_size: int = 10


def make_engine(settings: DatabaseSettings) -> AsyncEngine:
    """The engine of the projector and the operator commands: each checkout pings the server
    first, so a connection that died while pooled is replaced before it is used."""
    return create_async_engine(
        settings.database_url,
        pool_size=settings.database_pool_size,
        pool_pre_ping=True,
        # A failed statement's error would otherwise quote its parameters (the runs' input and
        # output) into the logs.
        hide_parameters=True,
    )
