"""track_execution: records an agent run as Started, heartbeats while it runs, then Completed /
Failed / Cancelled."""

from __future__ import annotations

import functools
import inspect
import logging
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from datetime import timedelta
from types import TracebackType
from typing import Any, ParamSpec, TypeVar, overload
from uuid import UUID

from pydantic import JsonValue, ValidationError
from pydantic_core import to_jsonable_python

from agent_history.contract.events import CancelledData, CompletedData, FailedData, RunRequestData
from agent_history.producer.envelope import EndData, new_id
from agent_history.producer.publisher import Publisher

P = ParamSpec("P")
R = TypeVar("R")

_log = logging.getLogger("agent_history.producer")


@dataclass
class Run:
    """The run being tracked; set ``output`` to what the run produced."""

    execution_id: UUID
    agent_id: UUID
    user_id: UUID
    output: JsonValue = None


class track_execution:
    """Records Started on entry and the run's end on exit; exceptions propagate unchanged.

    A context manager, ``async with`` or ``with``, is one execution. As a decorator of an async
    or a plain function (``@track_execution(agent_id, user_id, publisher=p)``) every call is
    an execution of its own: the call's arguments are the input (unless ``input_data`` is
    given) and its return value the output.

    While the run is open, the publisher records a heartbeat for it every
    ``heartbeat_interval_ms``; ``timeout`` (seconds or a timedelta) is the run's deadline,
    carried in its Started event: the watchdog times the run out past it, heartbeats or not.

    Ids that are not UUIDs and an input that is not a JSON object raise pydantic's
    ValidationError here, before the run starts. Nothing after that raises because of the
    recording: the spool and the broker never fail a run.
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
        timeout: float | timedelta | None = None,
    ) -> None:
        self._publisher = publisher
        self._timeout = timeout
        self._input = input_data
        self._request = RunRequestData(
            execution_id=execution_id or new_id(),
            agent_id=agent_id,
            user_id=user_id,
            input_data=input_data or {},
            agent_name=agent_name,
            user_name=user_name,
            timeout_ms=_milliseconds(timeout),
        )
        r = self._request
        self.run = Run(r.execution_id, r.agent_id, r.user_id)

    async def __aenter__(self) -> Run:
        await self._publisher.publish_started(self._request)
        self._publisher.heartbeats.opened(self._request)
        return self.run

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._publisher.heartbeats.closed(self.run.execution_id)
        # The publisher keeps an event it was handed even if this task is cancelled again.
        await self._publisher.publish_end(self._end(exc))

    def __enter__(self) -> Run:
        self._publisher.record_started(self._request)
        self._publisher.heartbeats.opened(self._request)
        return self.run

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._publisher.heartbeats.closed(self.run.execution_id)
        self._publisher.record_end(self._end(exc))

    def _end(self, exc: BaseException | None) -> EndData:
        """The run's end event data; an output that is not JSON is recorded as its repr."""
        run = self.run
        ids = {"execution_id": run.execution_id, "agent_id": run.agent_id, "user_id": run.user_id}
        if exc is not None and not isinstance(exc, Exception):
            # CancelledError, KeyboardInterrupt, SystemExit: the run did not get to finish.
            return CancelledData(**ids, reason=_describe(exc, bare=True))
        try:
            return _ending(ids, exc, run.output)
        except ValidationError:
            _log.warning("execution %s: its output is not JSON; recorded as its repr", ids)
            return _ending(ids, exc, to_jsonable_python(run.output, fallback=repr))

    @overload
    def __call__(
        self, fn: Callable[P, Coroutine[Any, Any, R]]
    ) -> Callable[P, Coroutine[Any, Any, R]]: ...
    @overload
    def __call__(self, fn: Callable[P, R]) -> Callable[P, R]: ...
    def __call__(self, fn: Callable[P, Any]) -> Callable[P, Any]:
        signature = inspect.signature(fn)

        def one_call(args: tuple[Any, ...], kwargs: dict[str, Any]) -> track_execution:
            bound = dict(signature.bind(*args, **kwargs).arguments)
            r = self._request
            return track_execution(
                r.agent_id,
                r.user_id,
                self._input or to_jsonable_python(bound, fallback=repr),
                publisher=self._publisher,
                agent_name=r.agent_name,
                user_name=r.user_name,
                timeout=self._timeout,
            )

        if inspect.iscoroutinefunction(fn):

            @functools.wraps(fn)
            async def tracked(*args: P.args, **kwargs: P.kwargs) -> Any:
                async with one_call(args, kwargs) as run:
                    result = await fn(*args, **kwargs)
                    run.output = to_jsonable_python(result, fallback=repr)
                    return result

            return tracked

        @functools.wraps(fn)
        def tracked_sync(*args: P.args, **kwargs: P.kwargs) -> Any:
            with one_call(args, kwargs) as run:
                result = fn(*args, **kwargs)
                run.output = to_jsonable_python(result, fallback=repr)
                return result

        return tracked_sync


def _milliseconds(timeout: float | timedelta | None) -> int | None:
    if timeout is None:
        return None
    seconds = timeout.total_seconds() if isinstance(timeout, timedelta) else timeout
    return max(1, round(seconds * 1000))


def _ending(ids: dict[str, UUID], exc: BaseException | None, output: JsonValue) -> EndData:
    if exc is None:
        return CompletedData(**ids, output_data=output)
    return FailedData(**ids, error_message=_describe(exc, bare=False), output_data=output)


def _describe(exc: BaseException, *, bare: bool) -> str:
    """``"ValueError: message"`` (``bare``: only the message), the class name when it has none."""
    try:
        text = str(exc)
    except Exception:  # a broken __str__ must not break the run's recording
        text = ""
    name = type(exc).__name__
    if not text:
        return name
    return text if bare else f"{name}: {text}"
