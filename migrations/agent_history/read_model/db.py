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


def make_engine(
    settings: DatabaseSettings, *, pre_ping: bool = True, synchronous_commit: bool = True
) -> AsyncEngine:
    """The engine of the projector and the operator commands.

    With ``pre_ping``, each checkout pings the server first (three round trips), so a
    connection that died while pooled is replaced before it is used. ``synchronous_commit``
    off: every transaction's commit returns before its changes reach the disk.
    """
    server_settings = {} if synchronous_commit else {"synchronous_commit": "off"}
    return create_async_engine(
        settings.database_url,
        pool_size=settings.database_pool_size,
        pool_pre_ping=pre_ping,
        connect_args={"server_settings": server_settings},
        # A failed statement's error would otherwise quote its parameters (the runs' input and
        # output) into the logs.
        hide_parameters=True,
    )
