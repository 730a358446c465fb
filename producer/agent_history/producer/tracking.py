"""track_execution: records an agent run as Started, then Completed / Failed / Cancelled."""

from __future__ import annotations

import asyncio
import functools
import inspect
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from types import TracebackType
from typing import ParamSpec, TypeVar
from uuid import UUID, uuid4

from pydantic import JsonValue
from pydantic_core import to_jsonable_python

from agent_history.contract.events import CancelledData, CompletedData, FailedData, RunRequestData
from agent_history.producer.publisher import Publisher

P = ParamSpec("P")
R = TypeVar("R")


@dataclass
class Run:
    """The run being tracked; set ``output`` to what the run produced."""

    execution_id: UUID
    agent_id: UUID
    user_id: UUID
    output: JsonValue = None


class track_execution:
    """Publishes Started on entry and the run's end on exit; exceptions propagate unchanged.

    As a context manager it is one execution. As a decorator (``@track_execution(agent_id,
    user_id, publisher=p)``) every call is its own execution: the call's arguments are the
    input (unless ``input_data`` is given) and its return value the output.
    """

    def __init__(
        self,
        agent_id: UUID,
        user_id: UUID,
        input_data: dict[str, JsonValue] | None = None,
        *,
        publisher: Publisher,
        execution_id: UUID | None = None,
        agent_name: str | None = None,
        user_name: str | None = None,
    ) -> None:
        self._publisher = publisher
        self._input = input_data
        self._names = (agent_name, user_name)
        self.run = Run(execution_id or uuid4(), agent_id, user_id)

    async def __aenter__(self) -> Run:
        run = self.run
        await self._publisher.publish_started(
            RunRequestData(
                execution_id=run.execution_id,
                agent_id=run.agent_id,
                user_id=run.user_id,
                input_data=self._input or {},
                agent_name=self._names[0],
                user_name=self._names[1],
            )
        )
        return run

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        run, p = self.run, self._publisher
        ids = {"execution_id": run.execution_id, "agent_id": run.agent_id, "user_id": run.user_id}
        end: Awaitable[object]
        if exc is None:
            end = p.publish_completed(CompletedData(**ids, output_data=run.output))
        elif isinstance(exc, Exception):
            message = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
            end = p.publish_failed(FailedData(**ids, error_message=message, output_data=run.output))
        else:  # CancelledError, KeyboardInterrupt, SystemExit: the run did not get to finish
            reason = str(exc) or type(exc).__name__
            end = p.publish_cancelled(CancelledData(**ids, reason=reason))
        # Shielded: a second cancellation while recording the end must not lose the record.
        await asyncio.shield(end)

    def __call__(self, fn: Callable[P, Awaitable[R]]) -> Callable[P, Awaitable[R]]:
        signature = inspect.signature(fn)

        @functools.wraps(fn)
        async def tracked(*args: P.args, **kwargs: P.kwargs) -> R:
            bound = signature.bind(*args, **kwargs)
            call = track_execution(
                self.run.agent_id,
                self.run.user_id,
                self._input or to_jsonable_python(dict(bound.arguments), fallback=repr),
                publisher=self._publisher,
                agent_name=self._names[0],
                user_name=self._names[1],
            )
            async with call as run:
                result = await fn(*args, **kwargs)
                run.output = to_jsonable_python(result, fallback=repr)
                return result

        return tracked
