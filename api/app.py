"""The history API's entrypoint: ``create_app(settings)`` and ``serve(settings)``."""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from typing import Any

import uvicorn
from fastapi import FastAPI, Request
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy.exc import InterfaceError, OperationalError

from agent_history.db import make_engine
from agent_history.settings import ApiSettings
from api.routes import health, history

DESCRIPTION = """\
Read-only history of agent executions, as the projector folded them from the execution
events. Lists are newest first; `total` counts every matching execution, not just the page.
"""

# Failures to reach the database (refused, dropped, shutting down): retrying later may work.
_DATABASE_UNAVAILABLE = (OSError, OperationalError, InterfaceError)


def create_app(settings: ApiSettings) -> FastAPI:
    """The API; its engine is built when the app starts and disposed when it stops."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        app.state.engine = make_engine(settings)
        try:
            yield
        finally:
            await app.state.engine.dispose()

    app = FastAPI(
        title="Agent execution history",
        description=DESCRIPTION,
        version="1.0.0",
        lifespan=lifespan,
    )
    app.include_router(history)
    app.include_router(health)
    app.add_exception_handler(RequestValidationError, _invalid_request)
    for unavailable in _DATABASE_UNAVAILABLE:
        app.add_exception_handler(unavailable, _database_unavailable)
    return app


def serve(settings: ApiSettings) -> None:
    """Run the API with uvicorn on ``settings.host``:``settings.port`` until interrupted."""
    uvicorn.run(create_app(settings), host=settings.host, port=settings.port)


async def _invalid_request(request: Request, exc: Exception) -> JSONResponse:
    """422 with FastAPI's error list, plus a message that names each invalid parameter."""
    assert isinstance(exc, RequestValidationError)
    errors = exc.errors()
    message = "; ".join(_describe(error) for error in errors)
    return JSONResponse(
        status_code=422,
        content={"message": message, "detail": jsonable_encoder(errors)},
    )


def _describe(error: Mapping[str, Any]) -> str:
    # loc is (where, name, index...): ("query", "status", 0) names the query parameter status.
    where, *path = (str(part) for part in error.get("loc") or ("request",))
    name = path[0] if path else where
    return f"invalid {where} parameter {name}: {error.get('msg', 'invalid value')}"


async def _database_unavailable(request: Request, exc: Exception) -> JSONResponse:
    return JSONResponse(
        status_code=503,
        content={"detail": f"database unavailable: {type(exc).__name__}"},
    )
