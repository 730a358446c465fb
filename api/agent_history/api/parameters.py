"""The query parameters the execution lists share, parsed and validated in one place."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Annotated, cast

from fastapi import Depends, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.routing import APIRoute
from pydantic import AfterValidator, AwareDatetime, BeforeValidator

from agent_history.api.queries import PAYLOADS, Order, Payload
from agent_history.api.schemas import ExecutionStatus

# PostgreSQL's OFFSET is a bigint; a larger value is a client error, not a server one.
MAX_OFFSET = 2**63 - 1
_PAYLOAD = "|".join(PAYLOADS)


def _in_utc(moment: datetime) -> datetime:
    try:
        return moment.astimezone(UTC)
    except OverflowError:
        raise ValueError("the time is out of range once converted to UTC") from None


def _not_a_number(value: object) -> object:
    """pydantic would read a number as seconds since 1970; these parameters are RFC 3339."""
    if isinstance(value, str):
        try:
            float(value)
        except ValueError:
            return value
        raise ValueError("give an RFC 3339 time with an offset, e.g. 2025-01-15T10:30:00Z")
    return value


def _known_payloads(include: str | None) -> str | None:
    unknown = [name for name in (include or "").split(",") if name not in PAYLOADS]
    if include and unknown:
        raise ValueError(
            f"unknown field {unknown[0]!r}: give a comma-separated list of {', '.join(PAYLOADS)}"
        )
    return include


# RFC 3339 with an offset; a time without one is refused rather than guessed.
Instant = Annotated[AwareDatetime, BeforeValidator(_not_a_number), AfterValidator(_in_utc)]

StartedAfter = Annotated[
    Instant | None,
    Query(
        description="Only executions that started at or after this time (RFC 3339, with an "
        "offset, e.g. 2025-01-15T10:30:00Z)."
    ),
]
StartedBefore = Annotated[
    Instant | None,
    Query(description="Only executions that started before this time (RFC 3339, with an offset)."),
]


@dataclass(frozen=True)
class ListParameters:
    statuses: frozenset[str]
    started_after: datetime | None
    started_before: datetime | None
    order: Order
    include: frozenset[Payload]
    limit: int
    offset: int
    cursor: str | None


# async: FastAPI would run a plain function in a worker thread, for nothing.
async def _list_parameters(
    limit: Annotated[int, Query(ge=1, le=100, description="Page size.")] = 50,
    offset: Annotated[
        int,
        Query(
            ge=0,
            le=MAX_OFFSET,
            description="Matching executions to skip; must be 0 when `cursor` is given.",
        ),
    ] = 0,
    cursor: Annotated[
        str | None,
        Query(
            description="The `next_cursor` of the previous page: continues right after its "
            "last execution, with the same filters and order, however many executions arrive "
            "meanwhile. A cursor from another query is a 400."
        ),
    ] = None,
    status: Annotated[
        list[ExecutionStatus] | None,
        Query(description="Only executions with one of these statuses; repeat to give several."),
    ] = None,
    status_filter: Annotated[
        list[ExecutionStatus] | None,
        Query(description="Synonym of `status`; both may be given and are combined."),
    ] = None,
    started_after: StartedAfter = None,
    started_before: StartedBefore = None,
    order: Annotated[
        Order,
        Query(description="By `execution_start`, then id: `desc` (newest first) or `asc`."),
    ] = "desc",
    include: Annotated[
        str | None,
        AfterValidator(_known_payloads),
        Query(
            # Documents the valid values; _known_payloads checks them, with a clearer message.
            json_schema_extra={"pattern": f"^(({_PAYLOAD})(,({_PAYLOAD}))*)?$"},
            description="Comma-separated large fields to add to each execution: `input_data`, "
            "`output_data`. Lists leave them out by default to keep pages small; the "
            "execution detail always has them.",
            examples=["input_data,output_data"],
        ),
    ] = None,
) -> ListParameters:
    included = frozenset(cast(Payload, name) for name in (include or "").split(",") if name)
    return ListParameters(
        statuses=frozenset({*(status or ()), *(status_filter or ())}),
        started_after=started_after,
        started_before=started_before,
        order=order,
        include=included,
        limit=limit,
        offset=offset,
        cursor=cursor,
    )


ListParams = Annotated[ListParameters, Depends(_list_parameters)]


async def reject_unknown_query(request: Request) -> None:
    """Refuse query parameters the operation does not define: a misspelt filter would
    otherwise be ignored, and the caller would get more than they asked for."""
    route: APIRoute = request.scope["route"]
    known = _QUERY_NAMES.get(route.unique_id)
    if known is None:
        known = _QUERY_NAMES[route.unique_id] = _query_names(route)
    unknown = sorted(set(request.query_params) - known)
    if unknown:
        takes = ", ".join(sorted(known)) or "none"
        reason = f"unknown parameter; this operation's query parameters: {takes}"
        raise RequestValidationError(
            [{"loc": ("query", name), "msg": reason, "type": "extra_forbidden"} for name in unknown]
        )


# Per operation (its name, path and method), worked out on its first request.
_QUERY_NAMES: dict[str, frozenset[str]] = {}


def _query_names(route: APIRoute) -> frozenset[str]:
    """The query parameters of a route and of every dependency it has."""
    names: set[str] = set()
    pending = [route.dependant]
    while pending:
        dependant = pending.pop()
        names.update(param.alias for param in dependant.query_params)
        pending.extend(dependant.dependencies)
    return frozenset(names)
