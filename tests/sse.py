"""A server-sent events client for tests and benchmarks, and an app served on a real port.

httpx's in-process ASGI transport hands over a response only once it has ended, which a live
stream never does; these run uvicorn on a free port and read the stream as a browser would.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

import httpx
import uvicorn
from fastapi import FastAPI


@dataclass(frozen=True)
class Message:
    """One message: ``event`` is None for a message with an id alone (no data)."""

    event: str | None
    data: str
    # The client's last event id once the message is read (as EventSource keeps it).
    last_id: str | None


async def messages(response: httpx.Response) -> AsyncIterator[Message]:
    """The messages of an event stream, comments left out."""
    last_id: str | None = None
    event: str | None = None
    data: list[str] = []
    async for line in response.aiter_lines():
        if line == "":
            if data:
                yield Message(event or "message", "\n".join(data), last_id)
            else:
                yield Message(None, "", last_id)
            event, data = None, []
            continue
        if line.startswith(":"):
            continue
        name, _, value = line.partition(":")
        value = value.removeprefix(" ")
        if name == "event":
            event = value
        elif name == "data":
            data.append(value)
        elif name == "id":
            last_id = value


@asynccontextmanager
async def serving(app: FastAPI) -> AsyncIterator[str]:
    """``app`` served by uvicorn on 127.0.0.1 (a free port) in this event loop; its base URL."""
    config = uvicorn.Config(
        app, host="127.0.0.1", port=0, log_level="warning", timeout_graceful_shutdown=2
    )
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve())
    for _ in range(500):
        if server.started or task.done():
            break
        await asyncio.sleep(0.01)
    if task.done():
        task.result()
    assert server.started, "uvicorn did not start within 5 s"
    port = server.servers[0].sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await task
