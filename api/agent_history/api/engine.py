"""The API's database engine."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from agent_history.read_model.db import DatabaseSettings


def make_reader_engine(settings: DatabaseSettings) -> AsyncEngine:
    """The API's engine: every session is read only, every statement runs on its own in
    autocommit mode (no BEGIN or COMMIT round trips), and no ping precedes a checkout: a reader
    retries a statement whose pooled connection had died (queries.fetch).

    No overflow beyond the pool: under a burst, requests wait for a pooled connection rather
    than each opening (and then closing) one of its own, which costs more than the query.
    """
    return create_async_engine(
        settings.database_url,
        pool_size=settings.database_pool_size,
        max_overflow=0,
        hide_parameters=True,  # no run data quoted in the logs of a failed query
        isolation_level="AUTOCOMMIT",
        connect_args={
            "server_settings": {
                "default_transaction_read_only": "on",
                # Names the API's sessions in pg_stat_activity.
                "application_name": "agent-history-api",
            }
        },
    )
