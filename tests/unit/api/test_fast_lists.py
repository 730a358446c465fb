"""FastLists reads a list's query parameters into the same model FastAPI does, or refuses
those FastAPI refuses (it then hands the request on to FastAPI for the 422)."""

from __future__ import annotations

import pytest
from fastapi.dependencies.utils import request_params_to_args
from fastapi.routing import APIRoute
from starlette.datastructures import QueryParams

from agent_history.api.fast_lists import QueryModel, list_routes
from agent_history.api.parameters import ListQuery
from agent_history.api.routes import LISTS, history

QUERIES = [
    "",
    "limit=1&limit=7",  # a single-valued name given twice: the last one
    "status=completed&status=failed&status_filter=running",
    "tag=a&tag=b&metadata.team=x&metadata.team=y&metadata.n=1",
    "started_after=2025-01-15T10:30:00Z&started_before=2025-01-16T10:30:00%2B02:00",
    "order=asc&include=input_data,output_data&root=true&model=m&offset=3",
    "cursor=abc&user_id=00000000-0000-4000-8000-000000000000",
    "agent_id=00000000-0000-4000-8000-000000000000",
    "limit=",
    "status=",
    "tag=",
    "limit=0",
    "colour=red&colour=blue",
    "metadata.=x",
    "root=yes",
    "started_after=yesterday",
    "include=everything",
]


@pytest.mark.parametrize("route", list_routes(history.routes, LISTS), ids=lambda r: r.path)
@pytest.mark.parametrize("query", QUERIES)
def test_query_parameters_read_as_fastapi_reads_them(route: APIRoute, query: str) -> None:
    params = QueryParams(query)
    expected, errors = request_params_to_args(route.dependant.query_params, params)
    got = QueryModel(route).read(params)
    if errors:
        assert got is None, query
    else:
        assert isinstance(got, ListQuery), query
        assert got == expected["params"], query
        assert got.metadata_filters == expected["params"].metadata_filters, query
