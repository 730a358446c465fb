"""The query parameters of each operation: one pydantic model per operation, holding all of them.

A route declares its model as ``Annotated[Model, Query()]``: FastAPI reads each field from the
query string (a list field from a repeated name) and documents each as a query parameter.
``extra="forbid"`` refuses any other name, since a misspelt filter that was ignored would
widen the result without a word. FastAPI hands a model every query parameter it has no field
for, so an operation's parameters all live in its one model. The lists' ``metadata.KEY``
parameters, whose names no field can list, are taken out of that rest by ListQuery itself,
checked, and kept as ``metadata_filters``.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Annotated, Any, ClassVar, Literal, Self, TypeAlias, cast
from uuid import UUID

from pydantic import (
    AfterValidator,
    AwareDatetime,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ModelWrapValidatorHandler,
    PrivateAttr,
    ValidationError,
    model_validator,
)
from pydantic_core import InitErrorDetails, PydanticCustomError

from agent_history.api.queries import PAYLOADS, Order, Payload
from agent_history.api.schemas import ExecutionStatus
from agent_history.api.stats_queries import GroupBy, Interval
from agent_history.contract.events import MAX_LABEL_CHARS, MAX_LABELS

# PostgreSQL's OFFSET is a bigint; a larger value is a client error, not a server one.
MAX_OFFSET = 2**63 - 1
_PAYLOAD = "|".join(PAYLOADS)
# RFC 3339's date-time, which the schema's format names: pydantic alone would also read "0.5"
# as a Unix time, or take an offset without its colon. The offset is optional here only so that
# a time without one gets pydantic's own reason (it needs timezone info).
_RFC3339 = re.compile(r"\d{4}-\d\d-\d\d[Tt]\d\d:\d\d:\d\d(\.\d+)?([Zz]|[+-]\d\d:\d\d)?")


def _rfc3339(value: object) -> object:
    if isinstance(value, str) and not _RFC3339.fullmatch(value):
        raise ValueError("give an RFC 3339 time with an offset, e.g. 2025-01-15T10:30:00Z")
    return value


def _in_utc(moment: datetime) -> datetime:
    """The time in UTC. A valid RFC 3339 time can fall outside years 1 to 9999 once converted
    (0001-01-01T00:00:00+05:00); no run can be there (the projector refuses such events), so as
    a bound it means the nearest instant that can be."""
    try:
        return moment.astimezone(UTC)
    except OverflowError:
        return (datetime.min if moment.year == 1 else datetime.max).replace(tzinfo=UTC)


def _known_payloads(include: str | None) -> str | None:
    unknown = [name for name in (include or "").split(",") if name not in PAYLOADS]
    if include and unknown:
        raise ValueError(
            f"unknown field {unknown[0]!r}: give a comma-separated list of {', '.join(PAYLOADS)}"
        )
    return include


# A time with an offset; one without is refused rather than guessed.
Instant = Annotated[AwareDatetime, BeforeValidator(_rfc3339), AfterValidator(_in_utc)]
StartedAfter = Annotated[
    Instant | None,
    Field(
        description="Only executions that started at or after this time (RFC 3339, with an "
        "offset, e.g. 2025-01-15T10:30:00Z)."
    ),
]
StartedBefore = Annotated[
    Instant | None,
    Field(description="Only executions that started before this time (RFC 3339, with an offset)."),
]


class OperationQuery(BaseModel):
    """Every query parameter of one operation; a name it does not have is a 422."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    # Parameter names beyond the fields', as the unknown-parameter message lists them.
    PATTERNS: ClassVar[tuple[str, ...]] = ()

    @model_validator(mode="wrap")
    @classmethod
    def _name_the_parameters(cls, data: Any, handler: ModelWrapValidatorHandler[Self]) -> Self:
        """Answer unknown names alone, each with the names this operation does take (pydantic
        would only say "Extra inputs are not permitted")."""
        try:
            return handler(data)
        except ValidationError as error:
            unknown = [line for line in error.errors() if line["type"] == "extra_forbidden"]
            if not unknown:
                raise
            names = [f.alias or name for name, f in cls.model_fields.items()]
            takes = ", ".join(sorted([*names, *cls.PATTERNS]))
            reason = PydanticCustomError(
                "extra_forbidden",
                "unknown parameter; this operation's query parameters: {takes}",
                {"takes": takes or "none"},
            )
            lines = sorted(unknown, key=lambda line: str(line["loc"]))
            raise ValidationError.from_exception_data(
                error.title,
                [{"type": reason, "loc": line["loc"], "input": line["input"]} for line in lines],
            ) from None


def _true_or_false(value: object) -> object:
    """Only what a reader takes for a boolean at a glance: pydantic alone would also read
    "yes", "on" or "t"."""
    if isinstance(value, str) and value.lower() not in ("true", "false", "1", "0"):
        raise ValueError("give true or false")
    return value


# A label as runs carry them (a tag, a model): text PostgreSQL can hold, so never NUL.
_NO_NUL = r"^[^\x00]*$"
Label = Annotated[str, Field(min_length=1, max_length=MAX_LABEL_CHARS, pattern=_NO_NUL)]
METADATA = "metadata."


def _metadata_filters(
    given: dict[str, Any],
) -> tuple[list[tuple[str, str]], list[InitErrorDetails]]:
    """The ``metadata.KEY=VALUE`` pairs among the parameters ``given`` (a repeated name gives
    a list), and a reason for each such parameter that is not one."""
    pairs: list[tuple[str, str]] = []
    errors: list[InitErrorDetails] = []
    for name, value in given.items():
        key = name[len(METADATA) :]
        values = value if isinstance(value, list) else [value]
        reason = None
        if not key:
            reason = "give a metadata key after 'metadata.', e.g. metadata.team=finance"
        elif len(key) > MAX_LABEL_CHARS:
            reason = f"a metadata key has at most {MAX_LABEL_CHARS} characters"
        elif "\x00" in key or any(not isinstance(v, str) or "\x00" in v for v in values):
            reason = "a metadata key or value cannot contain NUL characters"
        if reason is not None:
            error = PydanticCustomError("metadata_filter", reason)
            errors.append({"type": error, "loc": (name,), "input": value})
        pairs.extend((key, v) for v in values)
    if len(pairs) > MAX_LABELS and not errors:
        reason = f"at most {MAX_LABELS} metadata filters"
        error = PydanticCustomError("metadata_filter", reason)
        errors.append({"type": error, "loc": (METADATA,), "input": len(pairs)})
    return pairs, errors


class ExecutionQuery(OperationQuery):
    """One execution takes no query parameters."""


class StatsQuery(OperationQuery):
    started_after: StartedAfter = None
    started_before: StartedBefore = None
    group_by: GroupBy | None = Field(
        default=None,
        description="Also the same stats per model, user, status or tag (a run with several "
        "tags counts in each of them). model and status come from the rollups; user and tag "
        "from the rows.",
    )
    interval: Interval | None = Field(
        default=None,
        description="Also a time series: the same stats per hour or day (UTC) of the range.",
    )


class AgentsQuery(OperationQuery):
    limit: int = Field(default=50, ge=1, le=100, description="Page size.")
    offset: int = Field(default=0, ge=0, le=MAX_OFFSET, description="Agents to skip.")


class _Paging(OperationQuery):
    """A list's paging: what its stream and its export do not take."""

    limit: int = Field(default=50, ge=1, le=100, description="Page size.")
    offset: int = Field(
        default=0,
        ge=0,
        le=MAX_OFFSET,
        description="Matching executions to skip; must be 0 when `cursor` is given.",
    )
    cursor: str | None = Field(
        default=None,
        # Documented, not enforced here: an empty cursor stays the invalid-cursor 400 that
        # every other cursor this API did not issue is.
        json_schema_extra={"minLength": 1},
        description="The `next_cursor` of the previous page: continues right after its last "
        "execution, with the same filters and order, however many executions arrive "
        "meanwhile. A cursor from another query is a 400.",
    )


class ListFilters(OperationQuery):
    """Which executions of a list: the filters both lists, their streams and exports take."""

    status: list[ExecutionStatus] | None = Field(
        default=None,
        description="Only executions with one of these statuses; repeat to give several.",
    )
    status_filter: list[ExecutionStatus] | None = Field(
        default=None, description="Synonym of `status`; both may be given and are combined."
    )
    started_after: StartedAfter = None
    started_before: StartedBefore = None
    order: Order = Field(
        default="desc",
        description="By `execution_start`, then id: `desc` (newest first) or `asc`.",
    )
    include: Annotated[
        str | None,
        AfterValidator(_known_payloads),
        Field(
            # Documents the valid values; _known_payloads checks them, with a clearer message.
            json_schema_extra={"pattern": f"^(({_PAYLOAD})(,({_PAYLOAD}))*)?$"},
            description="Comma-separated large fields to add to each execution: `input_data`, "
            "`output_data`. Lists leave them out by default to keep pages small; the "
            "execution detail always has them.",
            examples=["input_data,output_data"],
        ),
    ] = None

    tag: list[Label] | None = Field(
        default=None,
        max_length=MAX_LABELS,
        description="Only executions carrying this tag; repeat to give several, all of which "
        "must be there.",
    )
    model: Label | None = Field(
        default=None, description="Only executions of this model (exactly as recorded)."
    )
    parent_execution_id: UUID | None = Field(
        default=None, description="Only the runs this run started (its direct children)."
    )
    root: Annotated[bool | None, BeforeValidator(_true_or_false)] = Field(
        default=None,
        description="true: only top-level runs (without a parent run); false: only runs "
        "started by another run.",
    )

    PATTERNS = (f"{METADATA}KEY",)
    _metadata: frozenset[tuple[str, str]] = PrivateAttr(default=frozenset())

    @model_validator(mode="wrap")
    @classmethod
    def _take_metadata_filters(cls, data: Any, handler: ModelWrapValidatorHandler[Self]) -> Self:
        """Take the ``metadata.KEY`` parameters out of what the fields' validation sees (it
        would refuse them as unknown) and check them beside it."""
        if not isinstance(data, dict):
            return handler(data)
        named = {k: v for k, v in data.items() if isinstance(k, str) and k.startswith(METADATA)}
        pairs, errors = _metadata_filters(named)
        try:
            query = handler({k: v for k, v in data.items() if k not in named})
        except ValidationError as error:
            if not errors:
                raise
            errors = [*_details(error), *errors]
        if errors:
            raise ValidationError.from_exception_data(cls.__name__, errors)
        query._metadata = frozenset(pairs)
        return query

    @property
    def metadata_filters(self) -> frozenset[tuple[str, str]]:
        """The (key, value) pairs of the ``metadata.KEY=VALUE`` parameters."""
        return self._metadata

    @property
    def statuses(self) -> frozenset[str]:
        """The statuses asked for under either name; empty for every status."""
        return frozenset({*(self.status or ()), *(self.status_filter or ())})

    @property
    def included(self) -> frozenset[Payload]:
        return frozenset(cast(Payload, name) for name in (self.include or "").split(",") if name)


def _details(error: ValidationError) -> list[InitErrorDetails]:
    """A validation error's lines, to be raised again with others."""
    return [
        {
            "type": PydanticCustomError(line["type"], line["msg"]),
            "loc": line["loc"],
            "input": line["input"],
        }
        for line in error.errors()
    ]


class TreeQuery(OperationQuery):
    depth: int = Field(
        default=5, ge=0, le=20, description="How many levels below the run to include."
    )
    limit: int = Field(
        default=500,
        ge=1,
        le=5000,
        description="The most executions to return, the run's own included.",
    )


class ListQuery(ListFilters, _Paging):
    """The parameters both lists take: their filters and paging (in this order in the
    schema: paging first)."""


class AgentFilters(ListFilters):
    """An agent's list's filters: its stream's parameters."""

    user_id: UUID | None = Field(default=None, description="Only this user's executions.")


class UserFilters(ListFilters):
    """A user's list's filters: its stream's parameters."""

    agent_id: UUID | None = Field(default=None, description="Only this agent's executions.")


class AgentListQuery(ListQuery, AgentFilters):
    pass


class UserListQuery(ListQuery, UserFilters):
    pass


ExportFormat: TypeAlias = Literal["jsonl", "csv"]
_FORMAT: Any = Field(
    default="jsonl",
    description="`jsonl`: one execution per line, in the list's JSON shape; `csv`: a header "
    "row, then one column per field of the list's shape (objects and arrays as JSON text).",
)


class AgentExportQuery(AgentFilters):
    format: ExportFormat = _FORMAT


class UserExportQuery(UserFilters):
    format: ExportFormat = _FORMAT
