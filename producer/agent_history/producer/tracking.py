"""track_execution: records an agent run as Started, heartbeats while it runs, then Completed /
Failed / Cancelled. A run entered inside another one (the same task, or a task or thread
started from it) is that run's child."""

from __future__ import annotations

import contextlib
import functools
import inspect
import logging
from collections.abc import Callable, Coroutine, Mapping, Sequence
from contextvars import ContextVar, Token
from dataclasses import dataclass
from datetime import timedelta
from decimal import Decimal
from types import TracebackType
from typing import Any, ParamSpec, TypeVar, overload
from uuid import UUID

from pydantic import JsonValue, ValidationError
from pydantic_core import to_jsonable_python

from agent_history.contract.events import (
    CancelledData,
    CompletedData,
    Cost,
    FailedData,
    MetadataValue,
    RunRequestData,
    Usage,
)
from agent_history.producer.envelope import EndData, new_id
from agent_history.producer.publisher import Publisher

P = ParamSpec("P")
R = TypeVar("R")

_log = logging.getLogger("agent_history.producer")


@dataclass
class Run:
    """The run being tracked; set ``output`` to what the run produced, and ``usage`` to what it
    consumed (or add each model call's share with ``add_usage``)."""

    execution_id: UUID
    agent_id: UUID
    user_id: UUID
    output: JsonValue = None
    usage: Usage | None = None

    def add_usage(
        self,
        input_tokens: int = 0,
        output_tokens: int = 0,
        cost: Decimal | str | None = None,
        currency: str = "USD",
    ) -> None:
        """Add one model call's tokens and cost to the run's usage. Values the contract cannot
        take (negative tokens, a cost that is not a decimal or in another currency than the
        run's) are logged and left out: recording never breaks a run."""
        now = self.usage or Usage()
        try:
            if input_tokens < 0 or output_tokens < 0:
                raise ValueError(f"token counts {input_tokens}, {output_tokens} are negative")
            spent = None if cost is None else _decimal(cost)
            if spent is not None and now.cost is not None:
                if now.cost.currency != currency:
                    raise ValueError(f"the run's cost is in {now.cost.currency}, not {currency}")
                spent += now.cost.amount
            self.usage = Usage(
                input_tokens=(now.input_tokens or 0) + input_tokens,
                output_tokens=(now.output_tokens or 0) + output_tokens,
                cost=Cost(amount=spent, currency=currency) if spent is not None else now.cost,
            )
        except (ArithmeticError, TypeError, ValueError) as error:  # ValidationError is one
            _log.warning("execution %s: usage left out: %s", self.execution_id, error)


def _decimal(cost: Decimal | str) -> Decimal:
    try:
        return Decimal(cost)
    except ArithmeticError:  # decimal.InvalidOperation, whose message is a class list
        raise ValueError(f"cost {cost!r} is not a decimal") from None


# The run whose body is running in this context: a run entered here is its child.
_current: ContextVar[Run | None] = ContextVar("agent_history_run", default=None)


class track_execution:
    """Records Started on entry and the run's end on exit; exceptions propagate unchanged.

    A context manager, ``async with`` or ``with``, is one execution. As a decorator of an async
    or a plain function (``@track_execution(agent_id, user_id, publisher=p)``) every call is
    an execution of its own: the call's arguments are the input (unless ``input_data`` is
    given) and its return value the output.

    While the run is open, the publisher records a heartbeat for it every
    ``heartbeat_interval_ms``; ``timeout`` (seconds or a timedelta) is the run's deadline,
    carried in its Started event: the watchdog times the run out past it, heartbeats or not.
    ``model``, ``tags`` and ``metadata`` go into the Started event; ``parent_execution_id``
    too, by default the run this one is entered in (none at the top).

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
        model: str | None = None,
        tags: Sequence[str] | None = None,
        metadata: Mapping[str, MetadataValue] | None = None,
        parent_execution_id: UUID | None = None,
    ) -> None:
        self._publisher = publisher
        self._timeout = timeout
        self._input = input_data
        self._parent = parent_execution_id
        self._context: Token[Run | None] | None = None
        self._request = RunRequestData(
            execution_id=execution_id or new_id(),
            agent_id=agent_id,
            user_id=user_id,
            input_data=input_data or {},
            agent_name=agent_name,
            user_name=user_name,
            timeout_ms=_milliseconds(timeout),
            model=model,
            tags=None if tags is None else list(tags),
            metadata=None if metadata is None else dict(metadata),
            parent_execution_id=parent_execution_id,
        )
        r = self._request
        self.run = Run(r.execution_id, r.agent_id, r.user_id)

    def _enter(self) -> RunRequestData:
        """The Started event's data, with the run entered here as the parent by default; from
        here on this run is the parent of runs entered in its body."""
        request, outer = self._request, _current.get()
        if self._parent is None and outer is not None and outer is not self.run:
            request = request.model_copy(update={"parent_execution_id": outer.execution_id})
        self._context = _current.set(self.run)
        return request

    def _leave(self) -> None:
        if self._context is None:
            return
        with contextlib.suppress(ValueError):  # left in another context: nothing there to undo
            _current.reset(self._context)
        self._context = None

    async def __aenter__(self) -> Run:
        request = self._enter()
        await self._publisher.publish_started(request)
        self._publisher.heartbeats.opened(request)
        return self.run

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._leave()
        self._publisher.heartbeats.closed(self.run.execution_id)
        # The publisher keeps an event it was handed even if this task is cancelled again.
        await self._publisher.publish_end(self._end(exc))

    def __enter__(self) -> Run:
        request = self._enter()
        self._publisher.record_started(request)
        self._publisher.heartbeats.opened(request)
        return self.run

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._leave()
        self._publisher.heartbeats.closed(self.run.execution_id)
        self._publisher.record_end(self._end(exc))

    def _end(self, exc: BaseException | None) -> EndData:
        """The run's end event data; an output that is not JSON is recorded as its repr."""
        run = self.run
        ids: dict[str, Any] = {
            "execution_id": run.execution_id,
            "agent_id": run.agent_id,
            "user_id": run.user_id,
        }
        if run.usage is not None:
            ids["usage"] = _usage(run)
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
                model=r.model,
                tags=r.tags,
                metadata=r.metadata,
                parent_execution_id=self._parent,
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


def _usage(run: Run) -> Usage | None:
    """The run's usage as the contract has it; one it cannot take is left out, never raised."""
    try:
        return Usage.model_validate(run.usage)
    except ValidationError as error:
        _log.warning("execution %s: its usage is not valid, left out: %s", run.execution_id, error)
        return None


def _ending(ids: dict[str, Any], exc: BaseException | None, output: JsonValue) -> EndData:
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
