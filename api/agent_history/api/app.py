"""The history API's entrypoint: ``create_app(settings)``, ``serve(settings, factory)``, and
``freeze_for_good()`` for a worker's factory."""

from __future__ import annotations

import gc
import logging
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import uvicorn
from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi

from agent_history.api.asyncapi import asyncapi
from agent_history.api.auth import ALL_SCOPE, ERASE_SCOPE, TokenVerifier
from agent_history.api.changes import ChangeFeed
from agent_history.api.cursor import CursorCodec, cursor_key
from agent_history.api.engine import make_reader_engine
from agent_history.api.erasure import erasure
from agent_history.api.exports import exports
from agent_history.api.fast_lists import FastLists, list_routes
from agent_history.api.health import health
from agent_history.api.login import LoginCodes, spend_in
from agent_history.api.metrics import install_metrics
from agent_history.api.page import install_page
from agent_history.api.ports import Eraser
from agent_history.api.problems import install_problem_handlers, problem_media_types
from agent_history.api.routes import LISTS, history
from agent_history.api.settings import ApiSettings
from agent_history.api.streams import streams
from agent_history.contract.settings import environment_of

DESCRIPTION = f"""\
The history of agent executions, as the projector folded them from the execution
events.

**Authentication.** Every endpoint but the health probes, these docs and the event
contract (`/asyncapi.json`, as a page at `/asyncapi`) needs
`Authorization: Bearer <JWT>`: `sub` is your user id (a UUID), `exp` is required, `scope` is
space-separated. You see only your own executions (another user's is a 404, as if it did not
exist) unless your token has the scope `{ALL_SCOPE}`. A missing or invalid token is a 401 with
a `WWW-Authenticate: Bearer` challenge.

**Erasure.** The one endpoint that changes anything, `DELETE /users/{{id}}/executions`, needs
the scope `{ERASE_SCOPE}` (else 403) and erases a user's executions, name and counts for good.

**Lists** are newest first by default (`order=asc` for oldest first), by `execution_start`
then id. Page by `limit`/`offset`, with `total` counting every match, or by cursor: each page
carries `next_cursor` (null on the last page) to pass as `cursor` for the next, which is as
fast deep in the history as at its start and neither repeats nor skips executions while new
ones arrive. Lists leave out `input_data` and `output_data` to keep pages small; ask for them
with `include=input_data,output_data`. One execution (`/executions/{{id}}`) always has them.

**Errors** are `application/problem+json` (RFC 9457): `type`, `title`, `status`, `detail`,
`instance`, and for invalid parameters an `errors` list naming each one and why.
"""

log = logging.getLogger(__name__)


def create_app(
    settings: ApiSettings, eraser: Eraser | None = None, *, fast_lists: bool = True
) -> FastAPI:
    """The API; its engine is built when the app starts and disposed when it stops.

    ``eraser`` serves DELETE /users/{id}/executions (without one, that answers 501).
    ``fast_lists``: list pages skip FastAPI's routing and dependency solving (api.fast_lists;
    off only to compare its answers with FastAPI's own).
    """

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        if settings.uses_development_secret:
            log.warning(
                "!!! INSECURE: AGENT_HISTORY_JWT_SECRET is not set, so the API uses the public "
                "development secret: anyone can mint tokens that read every execution. Set "
                "AGENT_HISTORY_JWT_SECRET (or AGENT_HISTORY_JWT_PUBLIC_KEY and "
                "AGENT_HISTORY_CURSOR_SECRET) outside local development, and "
                "AGENT_HISTORY_ENV=production, which refuses to start without them. !!!"
            )
        engine = app.state.engine = make_reader_engine(settings)
        app.state.login_codes = LoginCodes(settings, spend_in(engine))
        metrics.watch_pool(engine)
        feed = app.state.feed = ChangeFeed(settings.database_url)
        feed.start()
        try:
            yield
        finally:
            await feed.stop()
            metrics.watch_pool(None)
            await engine.dispose()

    app = FastAPI(
        title="Agent execution history",
        description=DESCRIPTION,
        version="2.0.0",
        lifespan=lifespan,
        # FastAPI's own OpenTelemetry off: requests are traced by the instrumentation that
        # server/bootstrap.py adds where a tracer provider is configured, and measured on
        # /metrics. Left on, it looked the global providers up on every request (1.5 % of the
        # API's samples under load, below what pairs resolve: docs/benchmarks-api.md) and,
        # wherever one is configured, traced requests on its own.
        telemetry={"tracing": False, "metrics": False, "logs": False},
    )
    app.state.settings = settings
    app.state.verifier = TokenVerifier(settings)
    app.state.cursors = CursorCodec(cursor_key(settings))
    app.state.eraser = eraser
    # Before the history: /executions/stream and /export are not execution ids.
    app.include_router(streams)
    app.include_router(exports)
    app.include_router(history)
    app.include_router(erasure)
    app.include_router(health)
    app.include_router(asyncapi)
    install_page(app)
    if fast_lists:
        # Inside the problem and metrics middleware, which see its requests as any other.
        app.add_middleware(FastLists, routes=list_routes(history.routes, LISTS))
    install_problem_handlers(app)
    metrics = install_metrics(app)

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = get_openapi(
                title=app.title,
                version=app.version,
                description=app.description,
                routes=app.routes,
            )
            app.openapi_schema = problem_media_types(schema)
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
    return app


def freeze_for_good() -> None:
    """Leave what this process holds now out of the cyclic collector's scans: call it in a
    worker process's app factory, once the app is built (bootstrap.api_from_environment).

    Under load, the requests in flight when the collector runs end up in the oldest
    generation, and a full collection then rescans everything the worker holds for good (the
    modules, the app, its routes and models) while every request on the worker waits
    (docs/benchmarks-api.md, round five). Frozen objects are still freed when their last
    reference goes; a cycle among them never is, which costs nothing for objects that live as
    long as the process. Never in create_app: a test process that builds many apps must keep
    collecting its cycles. Collected first, so that start-up's garbage is not kept for good.
    """
    gc.collect()
    gc.freeze()


def serve(settings: ApiSettings, factory: str) -> None:
    """Run the API with uvicorn on ``settings.host``:``settings.port`` until interrupted, in
    ``settings.workers`` processes; each builds its app with ``factory`` ("module:function")."""
    # The workers are processes of their own: they read these settings from the environment,
    # which then holds exactly them (environment_of drops any other AGENT_HISTORY_* variable).
    environment = environment_of(settings)
    os.environ.clear()
    os.environ.update(environment)
    uvicorn.run(
        factory,
        factory=True,
        host=settings.host,
        port=settings.port,
        workers=settings.workers,
        # No access log: a line per request costs more than it tells; log requests at the
        # proxy in front of the API.
        access_log=False,
        # Live streams never end on their own: give them this long once asked to stop.
        timeout_graceful_shutdown=5,
    )
