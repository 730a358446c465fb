"""The two list routes served in front of FastAPI's routing and dependency solving.

A list page is the API's most frequent request, and FastAPI's routing, middleware and
dependency solving took a third of its CPU (docs/benchmarks-api.md). ``FastLists`` matches a
GET on either list route with the route's own matcher, gets every argument from the same
functions FastAPI would call (the token check of api.deps, the route's own query-parameter
fields read by FastAPI's ``request_params_to_args``), calls the route's own endpoint and
answers its response. Nothing about a list is decided here.

Anything unusual goes on to FastAPI unchanged: another path or method, a token FastAPI would
refuse, a path or query parameter it would refuse. Those requests are answered by the same
handlers as before, which then check the request again. An exception from the endpoint
itself (a cursor that cannot continue, the database unreachable) goes to the app's own
exception handler for it, as Starlette's exception middleware would hand it.
"""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable, Iterable
from typing import Any, cast

from fastapi import Request, Response
from fastapi.dependencies.utils import request_params_to_args
from fastapi.routing import APIRoute
from starlette._exception_handler import _lookup_exception_handler
from starlette.routing import BaseRoute, Match
from starlette.types import ASGIApp, Receive, Scope, Send

from agent_history.api.deps import (
    bearer_scheme,
    get_current_caller,
    get_cursors,
    get_engine,
    get_feed,
    get_verifier,
)
from agent_history.api.problems import ProblemError

# What a list endpoint takes besides its path parameter, each as FastAPI would hand it.
_ARGUMENTS = frozenset({"request", "engine", "feed", "cursors", "caller", "params"})
_DEPENDENCIES = frozenset({get_current_caller, get_engine, get_feed, get_cursors})


def list_routes(
    routes: Iterable[BaseRoute], endpoints: Iterable[Callable[..., Any]]
) -> list[APIRoute]:
    """The routes of these endpoints, checked to take nothing FastLists does not provide."""
    wanted = list(endpoints)
    found = [r for r in routes if isinstance(r, APIRoute) and r.endpoint in wanted]
    for route in found:
        path = {field.name for field in route.dependant.path_params}
        taken = set(inspect.signature(route.endpoint).parameters)
        called = {dependency.call for dependency in route.dependant.dependencies}
        if taken != _ARGUMENTS | path or not called <= _DEPENDENCIES:
            raise TypeError(f"FastLists cannot serve {route.path}: its arguments changed")
    if len(found) != len(wanted):
        raise LookupError("FastLists: a list endpoint has no route")
    return found


class FastLists:
    """ASGI middleware: list pages straight to their endpoint; everything else to ``app``."""

    def __init__(self, app: ASGIApp, routes: list[APIRoute]) -> None:
        self._app, self._routes = app, routes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["method"] == "GET":
            for route in self._routes:
                match, child = route.matches(scope)
                if match is Match.FULL:
                    # In place, as Starlette's router does: the metrics middleware labels the
                    # request by the route it finds in this scope.
                    scope.update(child, route=route)
                    if await self._serve(route, scope, receive, send):
                        return
                    break
        await self._app(scope, receive, send)

    async def _serve(self, route: APIRoute, scope: Scope, receive: Receive, send: Send) -> bool:
        """Answer the request; False, having sent nothing, when FastAPI should answer it."""
        request = Request(scope, receive)
        arguments = await _arguments(route, request)
        if arguments is None:
            return False
        try:
            response = await route.endpoint(**arguments)
        except Exception as error:
            found = _lookup_exception_handler(scope["app"].exception_handlers, error)
            if found is None:
                raise
            # Every handler api.problems installs is a coroutine taking (request, error).
            handler = cast(Callable[[Request, Exception], Awaitable[Response]], found)
            response = await handler(request, error)
        await response(scope, receive, send)
        return True


async def _arguments(route: APIRoute, request: Request) -> dict[str, Any] | None:
    """The endpoint's arguments, or None for a request FastAPI would refuse."""
    try:
        caller = await get_current_caller(await get_verifier(request), await bearer_scheme(request))
    except ProblemError:
        return None
    path, path_errors = request_params_to_args(route.dependant.path_params, request.path_params)
    query, query_errors = request_params_to_args(route.dependant.query_params, request.query_params)
    if path_errors or query_errors:
        return None
    return {
        "request": request,
        "engine": await get_engine(request),
        "feed": await get_feed(request),
        "cursors": await get_cursors(request),
        "caller": caller,
        **path,
        **query,
    }
