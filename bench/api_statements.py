"""What the API sends to PostgreSQL for a request, captured from the app itself.

The app runs in this process (ASGI, no sockets) with listeners on its engine that record each
transaction's options and each statement with its parameters, exactly as asyncpg receives
them: SQLAlchemy's events for what runs through SQLAlchemy, and asyncpg's query logger on each
of the pool's connections for what the lists send to asyncpg themselves
(read_model.prepared.prepare).
The benchmark replays those straight through asyncpg for the database's own limit.
EXPLAIN (ANALYZE, BUFFERS) of a captured statement shows what a page reads, and timing it
over repeated executions shows when a generic plan replaces the custom ones.
"""

from __future__ import annotations

import json
import statistics
import time
from typing import Any

import asyncpg
import httpx
from sqlalchemy import event

from agent_history.api.app import create_app
from agent_history.api.settings import ApiSettings
from bench.api_load import Statements

_ISOLATION = {"REPEATABLE READ": "repeatable_read", "SERIALIZABLE": "serializable"}


async def capture(
    settings: ApiSettings, token: str, targets: dict[str, str]
) -> dict[str, Statements]:
    """For each name, the statements that a GET of its target (path and query) runs."""
    app = create_app(settings)
    found: dict[str, Statements] = {}
    async with app.router.lifespan_context(app):
        engine = app.state.engine.sync_engine
        options: dict[str, Any] = {}
        began: list[bool] = []
        statements: list[tuple[str, tuple[Any, ...]]] = []

        @event.listens_for(engine, "begin")
        def begin(conn: Any) -> None:
            began.append(True)
            options.update(conn.get_execution_options())

        @event.listens_for(engine, "before_cursor_execute")
        def executed(*args: Any) -> None:
            statement, parameters = args[2], args[3]
            statements.append((statement, tuple(parameters or ())))

        def logged(query: asyncpg.connection.LoggedQuery) -> None:
            statements.append((query.query, tuple(query.args)))

        @event.listens_for(engine, "connect")
        def connected(connection: Any, _: Any) -> None:
            # Statements SQLAlchemy prepares itself do not reach asyncpg's query loggers, so
            # nothing is recorded twice.
            connection.driver_connection.add_query_logger(logged)

        transport = httpx.ASGITransport(app=app)
        headers = {"Authorization": f"Bearer {token}"}
        async with httpx.AsyncClient(transport=transport, base_url="http://api") as client:
            for name, target in targets.items():
                options.clear()
                began.clear()
                statements.clear()
                response = await client.get(target, headers=headers)
                response.raise_for_status()
                found[name] = Statements(
                    isolation=_ISOLATION.get(options.get("isolation_level", "")),
                    readonly=bool(options.get("postgresql_readonly")),
                    transaction=bool(began),
                    statements=tuple(statements),
                )
    return found


async def explain(dsn: str, sql: str, args: tuple[Any, ...]) -> tuple[int, int, float]:
    """(rows the scans of agent_executions produced, buffers touched, execution ms)."""
    conn = await asyncpg.connect(dsn)
    try:
        plan = json.loads(
            await conn.fetchval(f"EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON) {sql}", *args)
        )[0]
    finally:
        await conn.close()
    rows = 0
    pending = [plan["Plan"]]
    while pending:
        node = pending.pop()
        pending.extend(node.get("Plans", ()))
        if node.get("Relation Name") == "agent_executions":
            rows += node["Actual Rows"] * node["Actual Loops"]
    top = plan["Plan"]
    buffers = top["Shared Hit Blocks"] + top["Shared Read Blocks"]
    return rows, buffers, plan["Execution Time"]


async def plan_drift(dsn: str, sql: str, args: tuple[Any, ...]) -> tuple[float, float]:
    """Median ms of executions 1-5 and 6-8 of one prepared statement on one connection.

    PostgreSQL plans a prepared statement for its parameters five times, then may switch to a
    generic plan made for average parameter values (an average agent, not the biggest).
    """
    conn = await asyncpg.connect(dsn)
    try:
        times = []
        for _ in range(8):
            began = time.perf_counter()
            await conn.fetch(sql, *args)
            times.append(1000 * (time.perf_counter() - began))
    finally:
        await conn.close()
    return statistics.median(times[:5]), statistics.median(times[5:])
