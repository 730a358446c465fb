"""JSON bodies of executions, written straight from the rows of api.queries.

They have exactly the shapes of api.schemas' response models (which document them in the
OpenAPI schema), without building those models for every row: orjson writes UUIDs, and times
in UTC with a 'Z', as pydantic does, and the payloads are PostgreSQL's own JSON text, passed
through without being parsed and written again. tests/unit/api/test_render.py holds the bodies
equal to the models' own serialization.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any
from uuid import UUID

import orjson
from fastapi import Response

from agent_history.api.queries import FIELDS, PAYLOADS


class JSONBody(Response):
    media_type = "application/json"


_NO_METADATA = orjson.Fragment(b"{}")


def execution(row: Mapping[Any, Any], payloads: Sequence[str] = PAYLOADS) -> dict[str, Any]:
    """An execution as a list or the detail shows it, with these of its payloads."""
    shaped = {name: row[name] for name in FIELDS}
    shaped["agent"] = {"id": row["agent_id"], "name": row["agent_name"]}
    shaped["user"] = {"id": row["user_id"], "name": row["user_name"]}
    shaped["model"] = row["model"]
    shaped["tags"] = row["tags"] or []
    metadata = row["metadata"]
    shaped["metadata"] = _NO_METADATA if metadata is None else orjson.Fragment(metadata)
    shaped["parent_execution_id"] = row["parent_execution_id"]
    shaped["trace_id"] = row["trace_id"]
    shaped["usage"] = _usage(row)
    for name in payloads:
        text = row[name]
        shaped[name] = None if text is None else orjson.Fragment(text)
    return shaped


def _usage(row: Mapping[Any, Any]) -> dict[str, Any] | None:
    """The usage the run reported, or None when it reported none; the cost amount stays the
    decimal text the query read."""
    cost = row["cost"]
    if cost is None and row["input_tokens"] is None and row["output_tokens"] is None:
        return None
    return {
        "input_tokens": row["input_tokens"],
        "output_tokens": row["output_tokens"],
        "cost": None
        if cost is None
        else {"amount": cost, "currency": row["cost_currency"] or "USD"},
    }


def _other(value: object) -> str:
    """What orjson does not write itself: asyncpg's UUID, a subclass of uuid.UUID."""
    if isinstance(value, UUID):
        return str(value)
    raise TypeError(f"{type(value).__name__} is not JSON serializable")


def dumps(body: Any) -> JSONBody:
    return JSONBody(orjson.dumps(body, default=_other, option=orjson.OPT_UTC_Z))


def page(
    executions: Sequence[str],
    *,
    total: int | None,
    limit: int,
    offset: int,
    next_cursor: str | None,
) -> JSONBody:
    """An ExecutionPage of executions already written as JSON (api.json_rows, or ``item``)."""
    return dumps(
        {
            "executions": orjson.Fragment("[" + ",".join(executions) + "]"),
            "total": total,
            "limit": limit,
            "offset": offset,
            "next_cursor": next_cursor,
        }
    )


def tree(
    rows: Sequence[Mapping[Any, Any]], *, depth: int, limit: int, truncated: str | None
) -> JSONBody:
    """An ExecutionTree: each of its rows in the list shape, with its depth."""
    executions = []
    for row in rows:
        node = execution(row, ())
        node["depth"] = row["depth"]
        executions.append(node)
    return dumps({"executions": executions, "depth": depth, "limit": limit, "truncated": truncated})


def item(row: Mapping[Any, Any], payloads: Sequence[str]) -> bytes:
    """One execution in a list's shape, as JSON: a stream's data, a JSON Lines export's line."""
    return orjson.dumps(execution(row, payloads), default=_other, option=orjson.OPT_UTC_Z)
