"""DELETE /users/{user_id}/executions: erasing a user, for callers with the erase scope.

The API's own sessions only read. The erase is the projector's (the only writer of the read
model), handed to ``create_app`` by the composition root (api.ports.Eraser); an app built
without one answers 501 to callers that may erase.
"""

from __future__ import annotations

from typing import Annotated, Any
from uuid import UUID

from fastapi import APIRouter, Depends, Path

from agent_history.api.auth import ERASE_SCOPE, missing_scope
from agent_history.api.deps import CurrentCaller, EraserDep, get_current_caller
from agent_history.api.problems import ProblemError
from agent_history.api.schemas import EXAMPLE_USER_ID, Erasure, Problem

_PROBLEM: dict[str, Any] = {"model": Problem}


erasure = APIRouter(
    prefix="/api/v1/agent-studio",
    tags=["erasure"],
    dependencies=[Depends(get_current_caller)],
    responses={
        401: {**_PROBLEM, "description": "No bearer token, or one that is not valid."},
        403: {**_PROBLEM, "description": f"A token without the scope `{ERASE_SCOPE}`."},
        422: {**_PROBLEM, "description": "Invalid parameters, each named with the reason."},
        501: {**_PROBLEM, "description": "This server was started without erasure."},
        503: {**_PROBLEM, "description": "The database is unreachable."},
    },
)


@erasure.delete(
    "/users/{user_id}/executions",
    summary="Erase a user: their executions, name and counts",
    response_model=Erasure,
)
async def erase_user_executions(
    eraser: EraserDep,
    caller: CurrentCaller,
    user_id: Annotated[UUID, Path(description="The user to erase.", examples=[EXAMPLE_USER_ID])],
) -> Erasure:
    """Deletes the user's executions, name and status counts, in short transactions, and
    records the erasure, so that neither the projector nor a replay brings them back (their
    later events are dropped and counted). A user with no executions is erased all the same.
    Idempotent: repeating it (say, after a dropped connection) finishes what is left. The raw
    events stay in Kafka's log until the topic's retention removes them."""
    if not caller.erases:
        raise missing_scope(ERASE_SCOPE, "erasing a user")
    if eraser is None:
        raise ProblemError(
            501, "this server was started without erasure; use `agent-history erase`"
        )
    return Erasure.model_validate(await eraser(user_id), from_attributes=True)
