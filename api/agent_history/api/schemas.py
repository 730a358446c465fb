"""The API's response models: what a client sees, documented in the OpenAPI schema."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal, TypeAlias
from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field, JsonValue

from agent_history.contract.statuses import Status

# The values allowed by the CHECK constraint on agent_executions.status.
ExecutionStatus: TypeAlias = Status

EXAMPLE_AGENT_ID = "6f1c2a4e-8d3b-4f5a-9c7e-1b2d3e4f5a6b"
EXAMPLE_USER_ID = "0a9b8c7d-6e5f-4a3b-8c2d-1e0f9a8b7c6d"
EXAMPLE_EXECUTION_ID = "3c4d5e6f-7a8b-4c9d-8e0f-1a2b3c4d5e6f"
EXAMPLE_PARENT_ID = "9e8d7c6b-5a4f-4e3d-8c2b-1a0f9e8d7c6b"

_EXECUTION_EXAMPLE: dict[str, Any] = {
    "id": EXAMPLE_EXECUTION_ID,
    "agent_id": EXAMPLE_AGENT_ID,
    "user_id": EXAMPLE_USER_ID,
    "status": "completed",
    "execution_start": "2025-01-15T10:30:00Z",
    "execution_end": "2025-01-15T10:30:02.250Z",
    "execution_time_ms": 2250,
    "last_seen_at": "2025-01-15T10:30:02.250Z",
    "input_data": {"prompt": "Summarise the quarterly report"},
    "output_data": {"summary": "Revenue grew 12%."},
    "error_message": None,
    "created_at": "2025-01-15T10:30:00.120Z",
    "updated_at": "2025-01-15T10:30:02.300Z",
    "agent": {"id": EXAMPLE_AGENT_ID, "name": "Report summariser"},
    "user": {"id": EXAMPLE_USER_ID, "name": "Ada Lovelace"},
    "model": "gpt-4o-mini",
    "tags": ["reports", "nightly"],
    "metadata": {"team": "finance", "priority": 2, "beta": True},
    "parent_execution_id": EXAMPLE_PARENT_ID,
    "usage": {
        "input_tokens": 1250,
        "output_tokens": 310,
        "cost": {"amount": "0.004125", "currency": "USD"},
    },
}
# A list leaves the payloads out unless asked for them with `include`.
_SUMMARY_EXAMPLE = {
    key: value
    for key, value in _EXECUTION_EXAMPLE.items()
    if key not in {"input_data", "output_data"}
}


class _Response(BaseModel):
    model_config = ConfigDict(frozen=True)


class NamedReference(_Response):
    """An agent or a user: its id and the display name of the latest event that named it."""

    id: UUID
    name: str | None = Field(description="Display name; null until an event names it.")


class Cost(_Response):
    """Money, exactly: the amount is a decimal string, never a float."""

    amount: str = Field(
        pattern=r"^[0-9]+(\.[0-9]+)?$",
        description="A decimal number of the currency's units, as a string.",
        examples=["0.004125"],
    )
    currency: str = Field(description="ISO 4217 code.", examples=["USD"])


class Usage(_Response):
    """What a run consumed, as its end reported it (OpenTelemetry's gen_ai.usage.*)."""

    input_tokens: int | None = Field(description="Tokens in the prompts; null if not reported.")
    output_tokens: int | None = Field(
        description="Tokens in the completions; null if not reported."
    )
    cost: Cost | None = Field(description="What the run cost; null if not reported.")


class _ExecutionFields(_Response):
    id: UUID = Field(description="The execution id.")
    agent_id: UUID
    user_id: UUID
    status: ExecutionStatus = Field(
        description="pending (queued), running (started), or how it ended: completed, failed, "
        "cancelled, or timed_out (a watchdog gave up on it: its worker was lost, it was queued "
        "too long or ran past its timeout; a real end that arrives later replaces it)."
    )
    execution_start: datetime = Field(
        description="When the run started; before a Started event is seen, its earliest event."
    )
    execution_end: datetime | None = Field(description="When the run ended; null while open.")
    execution_time_ms: int | None = Field(
        description="Whole milliseconds from start to end; null until both are known."
    )
    last_seen_at: datetime | None = Field(
        description="The newest time of the run's events (heartbeats included, a watchdog's "
        "verdict not): when its worker was last heard from. Null for a run seen only through "
        "a verdict (and for runs that ended before the upgrade that added it, until a replay)."
    )
    error_message: str | None = Field(
        description="Why a run failed, the reason it was cancelled, or why it timed out "
        "(worker_lost, queued_too_long, deadline_exceeded)."
    )
    created_at: datetime = Field(description="When the row was first written.")
    updated_at: datetime = Field(description="When the row last changed.")
    agent: NamedReference
    user: NamedReference
    model: str | None = Field(description="The model the run asked for; null if not given.")
    tags: list[str] = Field(description="The run's tags; empty when it has none.")
    metadata: dict[str, str | int | float | bool] = Field(
        description="The run's metadata: string keys to strings, numbers or booleans; empty "
        "when it has none."
    )
    parent_execution_id: UUID | None = Field(
        description="The run that started this one (a sub-agent or tool run); null for a "
        "top-level run."
    )
    usage: Usage | None = Field(
        description="Tokens and cost as the run's end reported them; null when it reported "
        "none (and while it runs)."
    )


class Execution(_ExecutionFields):
    """One agent execution as the projector has folded it from its events."""

    model_config = ConfigDict(json_schema_extra={"examples": [_EXECUTION_EXAMPLE]})

    input_data: dict[str, JsonValue] | None = Field(description="The run's input.")
    output_data: JsonValue = Field(description="What a completed or failed run returned.")


class ExecutionSummary(_ExecutionFields):
    """An execution in a list: `input_data` and `output_data` appear only when asked for
    with `include`."""

    input_data: dict[str, JsonValue] | None = Field(
        default=None, description="The run's input; present with include=input_data."
    )
    output_data: JsonValue = Field(
        default=None, description="The run's output; present with include=output_data."
    )


class ExecutionPage(_Response):
    """One page of executions, in the order asked for."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "executions": [_SUMMARY_EXAMPLE],
                    "total": 137,
                    "limit": 50,
                    "offset": 0,
                    "next_cursor": "AQAGK7wo4doAPE1eb3qLTJ2ODxorPE1eb0QTb6NVs2eK"
                    "xIYWnz9SuAthfNC1Q-_MCQ",
                }
            ]
        }
    )

    executions: list[ExecutionSummary]
    total: int | None = Field(
        description="How many executions match the filters, on all pages; null on a page "
        "fetched with a cursor (the first page carries it)."
    )
    limit: int = Field(description="The page size asked for.")
    offset: int = Field(description="How many matching executions were skipped.")
    next_cursor: str | None = Field(
        description="Pass as `cursor` for the next page; null on the last page."
    )


class TreeNode(_ExecutionFields):
    """An execution in a tree: the list shape, and how far below the tree's root it is."""

    depth: int = Field(description="0 for the root, 1 for its children, and so on.")


_CHILD_ID = "5e6f7a8b-9c0d-4e1f-8a2b-3c4d5e6f7a8b"


class ExecutionTree(_Response):
    """A run and its descendants as one flat list in depth-first order: each execution is
    followed by its children (oldest first, by execution_start then id), each with theirs.

    Flat rather than nested, because that is what a UI draws: a trace view or an indented
    list is rows in this order, each indented by ``depth``, and a collapsible tree nests them
    in one pass by ``parent_execution_id``; and a flat list has one schema however deep the
    tree is, which clients and code generators read without recursion.
    """

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "executions": [
                        {**_SUMMARY_EXAMPLE, "parent_execution_id": None, "depth": 0},
                        {
                            **_SUMMARY_EXAMPLE,
                            "id": _CHILD_ID,
                            "parent_execution_id": EXAMPLE_EXECUTION_ID,
                            "depth": 1,
                        },
                    ],
                    "depth": 5,
                    "limit": 500,
                    "truncated": None,
                }
            ]
        }
    )

    executions: list[TreeNode] = Field(
        description="The root first, then its descendants in depth-first order."
    )
    depth: int = Field(description="The depth asked for: how many levels below the root.")
    limit: int = Field(description="The most executions asked for, the root included.")
    truncated: Literal["depth", "limit"] | None = Field(
        description="null when the whole tree is here; `limit` when more executions lie "
        "within `depth` than `limit` allowed (those kept are the shallowest, a level at a "
        "time); `depth` when all within `depth` are here but deeper ones exist."
    )


class ParameterError(_Response):
    """One invalid parameter: where it is, its name, and why it is invalid."""

    model_config = ConfigDict(populate_by_name=True)

    in_: str = Field(alias="in", description="path, query or header.", examples=["query"])
    name: str = Field(examples=["limit"])
    reason: str = Field(examples=["Input should be less than or equal to 100"])


class Problem(_Response):
    """An RFC 9457 problem: why the request was not answered."""

    type: str = Field(
        default="about:blank",
        description="A URI naming the kind of problem; about:blank when the status says it all.",
        examples=["urn:agent-history:problem:invalid-cursor"],
    )
    title: str = Field(examples=["Invalid cursor"])
    status: int = Field(examples=[400])
    detail: str = Field(examples=["the cursor belongs to a different query"])
    instance: str | None = Field(default=None, description="The path that was requested.")
    errors: list[ParameterError] | None = Field(
        default=None, description="For invalid parameters: each one, with the reason."
    )


class Health(_Response):
    """The service is alive, or ready to serve requests."""

    status: Literal["ok"]


class Erasure(_Response):
    """What erasing a user removed from the history, and where their erasure stands."""

    user_id: UUID
    erased_at: datetime = Field(description="When the user was first erased.")
    first: bool = Field(description="False when the user had been erased before.")
    executions: int = Field(description="Executions this request deleted.", examples=[42])
    names: int = Field(description="The user's name (0 or 1 row) this request deleted.")
    status_counts: int = Field(description="Per-status count rows of the user it deleted.")
    executions_removed: int = Field(description="Executions deleted by every erasure so far.")
    dropped_events: int = Field(
        description="Events of the user that arrived after the erasure and were dropped."
    )
