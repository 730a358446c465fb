"""The API's response models: what a client sees, documented in the OpenAPI schema."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any, Literal, TypeAlias
from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field, JsonValue

from agent_history.tables import Status

# The values allowed by the CHECK constraint on agent_executions.status.
ExecutionStatus: TypeAlias = Status

_AGENT_ID = "6f1c2a4e-8d3b-4f5a-9c7e-1b2d3e4f5a6b"
_USER_ID = "0a9b8c7d-6e5f-4a3b-8c2d-1e0f9a8b7c6d"
_EXECUTION_ID = "3c4d5e6f-7a8b-4c9d-8e0f-1a2b3c4d5e6f"

_EXECUTION_EXAMPLE: dict[str, Any] = {
    "id": _EXECUTION_ID,
    "agent_id": _AGENT_ID,
    "user_id": _USER_ID,
    "status": "completed",
    "execution_start": "2025-01-15T10:30:00Z",
    "execution_end": "2025-01-15T10:30:02.250Z",
    "execution_time_ms": 2250,
    "input_data": {"prompt": "Summarise the quarterly report"},
    "output_data": {"summary": "Revenue grew 12%."},
    "error_message": None,
    "created_at": "2025-01-15T10:30:00.120Z",
    "updated_at": "2025-01-15T10:30:02.300Z",
    "agent": {"id": _AGENT_ID, "name": "Report summariser"},
    "user": {"id": _USER_ID, "name": "Ada Lovelace"},
}


class _Response(BaseModel):
    model_config = ConfigDict(frozen=True)


class NamedReference(_Response):
    """An agent or a user: its id and the display name of the latest event that named it."""

    id: UUID
    name: str | None = Field(description="Display name; null until an event names it.")


class Execution(_Response):
    """One agent execution as the projector has folded it from its events."""

    model_config = ConfigDict(json_schema_extra={"examples": [_EXECUTION_EXAMPLE]})

    id: UUID = Field(description="The execution id.")
    agent_id: UUID
    user_id: UUID
    status: ExecutionStatus = Field(
        description="pending (queued), running (started), or the terminal status."
    )
    execution_start: datetime = Field(
        description="When the run started; before a Started event is seen, its earliest event."
    )
    execution_end: datetime | None = Field(description="When the run ended; null while open.")
    execution_time_ms: int | None = Field(
        description="Whole milliseconds from start to end; null until both are known."
    )
    input_data: dict[str, JsonValue] | None = Field(description="The run's input.")
    output_data: JsonValue = Field(description="What a completed or failed run returned.")
    error_message: str | None = Field(
        description="Why a run failed, or the reason it was cancelled."
    )
    created_at: datetime = Field(description="When the row was first written.")
    updated_at: datetime = Field(description="When the row last changed.")
    agent: NamedReference
    user: NamedReference

    @classmethod
    def from_row(cls, row: Mapping[Any, Any]) -> Execution:
        """Build from a row of api.queries (the execution's columns plus agent_name, user_name)."""
        return cls.model_validate(
            {
                **row,
                "agent": {"id": row["agent_id"], "name": row["agent_name"]},
                "user": {"id": row["user_id"], "name": row["user_name"]},
            }
        )


class ExecutionPage(_Response):
    """One page of an agent's executions, newest first."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {"executions": [_EXECUTION_EXAMPLE], "total": 137, "limit": 50, "offset": 0}
            ]
        }
    )

    executions: list[Execution]
    total: int = Field(description="How many executions match the filters, on all pages.")
    limit: int = Field(description="The page size asked for.")
    offset: int = Field(description="How many matching executions were skipped.")


class ErrorBody(_Response):
    """A request that cannot be answered."""

    detail: str = Field(examples=[f"execution {_EXECUTION_ID} not found"])


class ValidationErrorBody(_Response):
    """A request with invalid parameters; `detail` is FastAPI's list of errors."""

    message: str = Field(
        description="The invalid parameters, by name, with the reason.",
        examples=["invalid query parameter status: Input should be 'pending', 'running', ..."],
    )
    detail: list[dict[str, Any]] = Field(
        description="One entry per error; `loc` names the parameter, e.g. [query, limit]."
    )


class Health(_Response):
    """Whether the service is alive, or ready to serve requests."""

    status: Literal["ok", "unavailable"]
    detail: str | None = Field(default=None, description="Why the service is not ready.")
