"""The small HTTP port of the projector, the watchdog and replay: /metrics, /healthz, /readyz.

It runs on the service's own event loop, so a scrape reads the service's state between two
of its steps (no locks), and /healthz answering means that loop is not blocked. Plain
asyncio: three GET endpoints need no web framework.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

log = logging.getLogger(__name__)

# Why the service is not ready; empty when it is.
Unready = Callable[[], list[str]]
_READ_TIMEOUT_S = 5.0
_MAX_HEAD = 16 * 1024
_JSON = "application/json"


@asynccontextmanager
async def serving_probes(
    host: str, port: int, registry: CollectorRegistry, unready: Unready
) -> AsyncIterator[int | None]:
    """Serve the probes on ``host``:``port`` while the block runs; yields the bound port.

    ``port`` 0 turns the port off (yields None). A port that cannot be bound is logged as
    an error and left off: the service itself goes on.
    """
    if not port:
        yield None
        return

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            async with asyncio.timeout(_READ_TIMEOUT_S):
                head = await reader.readuntil(b"\r\n\r\n")
            status, content_type, body = _answer(head, registry, unready)
            writer.write(
                f"HTTP/1.1 {status}\r\nContent-Type: {content_type}\r\n"
                f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n".encode()
                + body
            )
            await writer.drain()
        except (TimeoutError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, OSError):
            pass
        finally:
            writer.close()
            with contextlib.suppress(OSError):
                await writer.wait_closed()

    try:
        server = await asyncio.start_server(handle, host, port, limit=_MAX_HEAD)
    except OSError as e:
        log.error("metrics and health port %s:%d not served: %s", host, port, e)
        yield None
        return
    bound = server.sockets[0].getsockname()[1]
    log.info("metrics on http://%s:%d/metrics, health on /healthz and /readyz", host, bound)
    try:
        yield bound
    finally:
        server.close()
        await server.wait_closed()


def _answer(head: bytes, registry: CollectorRegistry, unready: Unready) -> tuple[str, str, bytes]:
    method, _, rest = head.partition(b" ")
    path = rest.partition(b" ")[0].partition(b"?")[0]
    if method != b"GET":
        return "405 Method Not Allowed", _JSON, b'{"status":"method not allowed"}'
    if path == b"/metrics":
        return "200 OK", CONTENT_TYPE_LATEST, generate_latest(registry)
    if path == b"/healthz":
        return "200 OK", _JSON, b'{"status":"ok"}'
    if path == b"/readyz":
        reasons = unready()
        if reasons:
            body = json.dumps({"status": "unavailable", "reasons": reasons}).encode()
            return "503 Service Unavailable", _JSON, body
        return "200 OK", _JSON, b'{"status":"ok"}'
    return "404 Not Found", _JSON, b'{"status":"not found"}'
