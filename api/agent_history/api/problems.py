"""Every error as an RFC 9457 problem (application/problem+json), never a stack trace or SQL.

Routes raise ``ProblemError``; Starlette's HTTP errors (unknown route 404, wrong method 405),
invalid parameters (422), a cursor that cannot continue (``InvalidCursor``, 400) and an
unreachable database (503) are turned into problems by the handlers that
``install_problem_handlers`` registers, and ``UnexpectedErrors`` turns anything else into a
generic 500 after logging it. Only this layer speaks HTTP: the queries and the cursors below it
raise errors of their own.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator, Mapping
from http import HTTPStatus
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy.exc import InterfaceError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import BaseRoute, Match, Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from agent_history.api.cursor import InvalidCursor
from agent_history.api.schemas import ParameterError, Problem

PROBLEM_JSON = "application/problem+json"
_TYPE = "urn:agent-history:problem:"
INVALID_PARAMETERS = f"{_TYPE}invalid-parameters"
INVALID_CURSOR = f"{_TYPE}invalid-cursor"
UNAUTHENTICATED = f"{_TYPE}unauthenticated"
INSUFFICIENT_SCOPE = f"{_TYPE}insufficient-scope"
DATABASE_UNAVAILABLE = f"{_TYPE}database-unavailable"

# Failures to reach the database (refused, dropped, shutting down, or no pooled connection free
# within the pool's timeout): retrying later may work.
DATABASE_ERRORS = (OSError, OperationalError, InterfaceError, PoolTimeout)

log = logging.getLogger(__name__)


class ProblemResponse(JSONResponse):
    media_type = PROBLEM_JSON


class ProblemError(Exception):
    """A request the API answers with a problem; ``kind`` is its type URI (about:blank: generic)."""

    def __init__(
        self,
        status: int,
        detail: str,
        *,
        kind: str = "about:blank",
        title: str | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(detail)
        self.problem = Problem(
            type=kind,
            title=title or HTTPStatus(status).phrase,
            status=status,
            detail=detail,
        )
        self.headers = dict(headers or {})


def problem_response(
    problem: Problem, request: Request | None = None, headers: Mapping[str, str] | None = None
) -> ProblemResponse:
    if request is not None:
        problem = problem.model_copy(update={"instance": request.url.path})
    return ProblemResponse(
        problem.model_dump(mode="json", by_alias=True, exclude_none=True),
        status_code=problem.status,
        headers=dict(headers or {}),
    )


def not_found(detail: str) -> ProblemError:
    return ProblemError(404, detail)


async def _problem(request: Request, exc: Exception) -> ProblemResponse:
    assert isinstance(exc, ProblemError)
    return problem_response(exc.problem, request, exc.headers)


async def _http_error(request: Request, exc: Exception) -> ProblemResponse:
    assert isinstance(exc, StarletteHTTPException)
    phrase = HTTPStatus(exc.status_code).phrase
    detail = str(exc.detail)
    if exc.status_code == 404 and detail == phrase:
        detail = f"nothing is served at {request.url.path}"
    headers = dict(exc.headers or {})
    if exc.status_code == 405:
        # Starlette names the methods of the first route on the path only; a path can have
        # several (GET and DELETE /users/{id}/executions are in different routers).
        headers["Allow"] = _allowed_methods(request) or headers.get("Allow", "")
        if detail == phrase:
            detail = f"{request.method} is not allowed here; allowed: {headers['Allow']}"
    problem = Problem(title=phrase, status=exc.status_code, detail=detail)
    return problem_response(problem, request, headers)


def _allowed_methods(request: Request) -> str:
    """Every method that some route serves on the request's path."""
    methods: set[str] = set()
    for route in _routes(request.app.router.routes):
        if route.methods and route.matches(request.scope)[0] is not Match.NONE:
            methods |= route.methods
    return ", ".join(sorted(methods))


def _routes(routes: Iterable[BaseRoute]) -> Iterator[Route]:
    for route in routes:
        if isinstance(route, Route):
            yield route
        # FastAPI keeps an included router as one route that holds the router's own routes.
        included = getattr(route, "original_router", None)
        if included is not None:
            yield from _routes(included.routes)


async def _invalid_request(request: Request, exc: Exception) -> ProblemResponse:
    """422 naming each invalid parameter, where it is and why."""
    assert isinstance(exc, RequestValidationError)
    errors = [_parameter_error(error) for error in exc.errors()]
    problem = Problem(
        type=INVALID_PARAMETERS,
        title="Invalid parameters",
        status=422,
        detail="; ".join(f"invalid {e.in_} parameter {e.name}: {e.reason}" for e in errors),
        errors=errors,
    )
    return problem_response(problem, request)


def _parameter_error(error: Mapping[str, Any]) -> ParameterError:
    # loc is (where, name, index...): ("query", "status", 0) names the query parameter status.
    where, *path = (str(part) for part in error.get("loc") or ("request",))
    return ParameterError(
        in_=where, name=path[0] if path else where, reason=str(error.get("msg", "invalid value"))
    )


def invalid_cursor(error: InvalidCursor) -> Problem:
    """The 400 that answers a cursor which cannot continue the query it was given to."""
    return Problem(type=INVALID_CURSOR, title="Invalid cursor", status=400, detail=str(error))


async def _invalid_cursor(request: Request, exc: Exception) -> ProblemResponse:
    assert isinstance(exc, InvalidCursor)
    return problem_response(invalid_cursor(exc), request)


async def _database_unavailable(request: Request, exc: Exception) -> ProblemResponse:
    log.warning("database unavailable: %s", type(exc).__name__)
    problem = Problem(
        type=DATABASE_UNAVAILABLE,
        title="Database unavailable",
        status=503,
        detail=f"the database is unreachable or busy ({type(exc).__name__}); retry later",
    )
    return problem_response(problem, request)


class UnexpectedErrors:
    """ASGI middleware: an exception no handler took becomes a generic 500 problem, logged once."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False

        async def tracking_send(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, receive, tracking_send)
        except Exception:
            log.exception("unexpected error serving %s %s", scope["method"], scope["path"])
            if started:
                raise
            problem = Problem(
                title="Internal Server Error",
                status=500,
                detail="an unexpected error occurred; it has been logged",
                instance=scope["path"],
            )
            await problem_response(problem)(scope, receive, send)


def install_problem_handlers(app: FastAPI) -> None:
    app.add_exception_handler(ProblemError, _problem)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(RequestValidationError, _invalid_request)
    app.add_exception_handler(InvalidCursor, _invalid_cursor)
    for unavailable in DATABASE_ERRORS:
        app.add_exception_handler(unavailable, _database_unavailable)
    app.add_middleware(UnexpectedErrors)


def problem_media_types(openapi: dict[str, Any]) -> dict[str, Any]:
    """Document every error response (4xx, 5xx) as application/problem+json."""
    for operations in openapi.get("paths", {}).values():
        for operation in operations.values():
            for status, response in operation.get("responses", {}).items():
                content = response.get("content", {})
                if status[0] in "45" and "application/json" in content:
                    content[PROBLEM_JSON] = content.pop("application/json")
    return openapi
