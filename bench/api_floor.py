"""The floor of the API benchmark: what any Python HTTP API on this machine can reach.

A raw ASGI callable, no framework: each GET runs the statements the API sent for a request
(captured from the app, as the asyncpg reference replays them) on a connection of an asyncpg
pool of the API's size, and answers the page's JSON joined from the rows' bodies. It serves
under uvicorn with the API's options and workers, so HTTP parsing, the event loop, a pooled
connection and the statement's round trip are all it costs: no token, no parameters, no
routing. The API's rate over this one's bounds what changes to the API's own code can gain.

    python -m bench.api_floor PORT WORKERS STATEMENTS   (a file written by ``save``)
"""

from __future__ import annotations

import os
import pickle
import sys
from pathlib import Path
from typing import Any

import asyncpg

from agent_history.api.app import freeze_for_good, serve
from agent_history.api.settings import ApiSettings
from bench.api_load import Statements
from bench.environment import asyncpg_dsn

# Where each worker process finds the statements (uvicorn imports the app by name).
_STATEMENTS = "BENCH_FLOOR_STATEMENTS"
_HEADERS = [(b"content-type", b"application/json")]


def save(work: Statements, path: Path) -> Path:
    """``work``'s statements in a file for a floor process to serve."""
    path.write_bytes(pickle.dumps(work.statements))
    return path


class Floor:
    """ASGI: lifespan opens and closes the pool; every HTTP request is one page."""

    def __init__(self, dsn: str, pool_size: int, statements: tuple[tuple[str, Any], ...]) -> None:
        self._dsn, self._size, self._statements = dsn, pool_size, statements
        self._pool: asyncpg.Pool | None = None

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            await self._lifespan(receive, send)
            return
        assert self._pool is not None
        async with self._pool.acquire() as conn:
            for sql, args in self._statements:
                records = await conn.fetch(sql, *args)
        body = ("[" + ",".join(record["body"] for record in records) + "]").encode()
        await send({"type": "http.response.start", "status": 200, "headers": _HEADERS})
        await send({"type": "http.response.body", "body": body})

    async def _lifespan(self, receive: Any, send: Any) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                self._pool = await asyncpg.create_pool(
                    self._dsn, min_size=self._size, max_size=self._size
                )
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                if self._pool is not None:
                    await self._pool.close()
                await send({"type": "lifespan.shutdown.complete"})
                return


def floor_from_environment() -> Floor:
    """The app of one uvicorn worker process."""
    settings = ApiSettings()
    statements = pickle.loads(Path(os.environ[_STATEMENTS]).read_bytes())
    floor = Floor(asyncpg_dsn(settings.database_url), settings.database_pool_size, statements)
    freeze_for_good()  # as the API's workers do, so that both pay the collector alike
    return floor


def main() -> None:
    port, workers, statements = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
    os.environ[_STATEMENTS] = statements
    # Served as the API is: the same function, so the same uvicorn options.
    settings = ApiSettings(host="127.0.0.1", port=port, workers=workers)
    serve(settings, f"{__name__}:{floor_from_environment.__name__}")


if __name__ == "__main__":
    main()
