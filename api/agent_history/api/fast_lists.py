"""The two list routes served in front of FastAPI's routing and dependency solving.

A list page is the API's most frequent request, and FastAPI's routing, middleware and
dependency solving took a third of its CPU (docs/benchmarks-api.md). ``FastLists`` matches a
GET on either list route with the route's own matcher, gets every argument from the same
functions FastAPI would call (the token check of api.deps, the path parameter by FastAPI's
``request_params_to_args``), validates the query parameters with the route's own model,
calls the route's own endpoint and answers its response. Nothing about a list is decided here.

The query parameters are read into the model's input as FastAPI reads them (a list field from
every value of its name, any other field from its last value, the names no field has as
extras that the model refuses), from a table of the fields worked out once: FastAPI works it
out again for every request, a tenth of a list page's CPU.

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
from fastapi._compat import field_annotation_is_sequence
from fastapi.dependencies.utils import request_params_to_args
from fastapi.routing import APIRoute
from pydantic import BaseModel, Json, ValidationError
from starlette._exception_handler import _lookup_exception_handler
from starlette.datastructures import QueryParams
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


class QueryModel:
    """A list route's query-parameter model, and which of its fields take every value."""

    def __init__(self, route: APIRoute) -> None:
        (param,) = route.dependant.query_params
        model = param.field_info.annotation
        assert isinstance(model, type)
        assert issubclass(model, BaseModel)
        fields = model.model_fields
        if any(
            f.alias or f.validation_alias or any(type(m) is Json for m in f.metadata)
            for f in fields.values()
        ):
            raise TypeError(f"FastLists cannot read {model.__name__}: a field has an alias")
        self.model = model
        self._many = frozenset(
            n for n, f in fields.items() if field_annotation_is_sequence(f.annotation)
        )
        self._one = frozenset(fields) - self._many

    def read(self, query: QueryParams) -> BaseModel | None:
        """The parameters as FastAPI would hand them to the route; None when it would refuse
        them."""
        values: dict[str, Any] = {}
        others: dict[str, list[str]] = {}
        for name, value in query.multi_items():
            if name in self._one:
                values[name] = value  # the last one, as FastAPI's get()
            elif name in self._many:
                values.setdefault(name, []).append(value)
            else:
                others.setdefault(name, []).append(value)
        values.update((name, v[0] if len(v) == 1 else v) for name, v in others.items())
        try:
            return self.model.model_validate(values)
        except ValidationError:
            return None


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
        self._queries = {route.path: QueryModel(route) for route in routes}

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
        arguments = await _arguments(route, request, self._queries[route.path])
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


async def _arguments(route: APIRoute, request: Request, query: QueryModel) -> dict[str, Any] | None:
    """The endpoint's arguments, or None for a request FastAPI would refuse."""
    try:
        caller = await get_current_caller(await get_verifier(request), await bearer_scheme(request))
    except ProblemError:
        return None
    path, errors = request_params_to_args(route.dependant.path_params, request.path_params)
    params = query.read(request.query_params)
    if errors or params is None:
        return None
    return {
        "request": request,
        "engine": await get_engine(request),
        "feed": await get_feed(request),
        "cursors": await get_cursors(request),
        "caller": caller,
        "params": params,
        **path,
    }
