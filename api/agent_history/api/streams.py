"""Live lists: ``<list>/stream`` sends each run that changes, as server-sent events.

A stream takes its list's filters and authorization. It waits on its subscription to the
process's change feed (api.changes), which wakes it only for announcements about its agent or
user; it then reads the changed runs that its list's filters keep, in one statement, and sends
each as ``event: execution`` with the list's item as ``data``. The ``id`` of the last event of
a round is the position of the last announcement it covers, so a client that reconnects with
``Last-Event-ID`` gets whatever changed since (from the feed's replay buffer, rows read as they
are now), or ``event: reset`` when that is out of reach, or when an announcement could not say
which runs changed (a backlog's big batches, replay, prune, erase): the client then reloads
the list. Resets come at most once a second per stream; one covers everything before it.
A comment every 15 s keeps proxies from closing a quiet stream, with the position as ``id``
when nothing is pending, so a quiet client's position stays within the buffer's reach. A stream
ends after ``stream_max_seconds`` (ApiSettings); the client resumes from its position.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Collection
from typing import Annotated, Any
from uuid import UUID

from fastapi import APIRouter, Depends, Header, Path, Query
from fastapi.responses import StreamingResponse
from sqlalchemy.ext.asyncio import AsyncEngine

from agent_history.api import queries, render
from agent_history.api.changes import ChangeFeed, Subscription
from agent_history.api.deps import (
    CurrentCaller,
    EngineDep,
    FeedDep,
    SettingsDep,
    get_current_caller,
)
from agent_history.api.filters import ExecutionFilter
from agent_history.api.paging import list_filter
from agent_history.api.parameters import AgentFilters, UserFilters
from agent_history.api.problems import not_found
from agent_history.api.schemas import EXAMPLE_AGENT_ID, EXAMPLE_USER_ID, Problem

log = logging.getLogger(__name__)

KEEP_ALIVE_SECONDS = 15.0
RESET_GAP_SECONDS = 1.0
CONNECT_WAIT_SECONDS = 5.0
_PROBLEM: dict[str, Any] = {"model": Problem}
# One message of the stream, as a client parses it.
_EVENT: dict[str, Any] = {
    "type": "object",
    "properties": {
        "event": {"type": "string", "enum": ["execution", "reset"]},
        "data": {"type": "string", "description": "execution: one list item, as JSON"},
        "id": {"type": "string", "description": "the position to resume after"},
        "retry": {"type": "integer"},
    },
}
_EVENT_STREAM: dict[int | str, dict[str, Any]] = {
    200: {
        "description": "`text/event-stream`: `event: execution` (data: one list item), "
        "`event: reset` (reload the list), comments to keep the connection open.",
        "content": {"text/event-stream": {"schema": _EVENT}},
    }
}

streams = APIRouter(
    prefix="/api/v1/agent-studio",
    tags=["live"],
    dependencies=[Depends(get_current_caller)],
    responses={
        401: {**_PROBLEM, "description": "No bearer token, or one that is not valid."},
        422: {**_PROBLEM, "description": "Invalid parameters, each named with the reason."},
    },
)
LastEventId = Annotated[
    str | None,
    Header(description="The `id` of the last event received: resume right after it."),
]


@streams.get(
    "/agents/{agent_id}/executions/stream",
    summary="Follow an agent's executions as they change",
    response_class=StreamingResponse,
    responses=_EVENT_STREAM,
)
async def stream_agent_executions(
    settings: SettingsDep,
    engine: EngineDep,
    feed: FeedDep,
    caller: CurrentCaller,
    agent_id: Annotated[UUID, Path(examples=[EXAMPLE_AGENT_ID])],
    params: Annotated[AgentFilters, Query()],
    last_event_id: LastEventId = None,
) -> StreamingResponse:
    """Each execution of the list (same filters, `include` too) as it changes. Open the stream
    before loading the list's first page, so nothing falls between the two."""
    where = list_filter(params, agent_id=agent_id, user_id=params.user_id, owner_id=caller.owner)
    return await event_stream(
        engine, feed, where, params.included, last_event_id, settings.stream_max_seconds
    )


@streams.get(
    "/users/{user_id}/executions/stream",
    summary="Follow a user's executions as they change",
    response_class=StreamingResponse,
    responses={
        **_EVENT_STREAM,
        404: {**_PROBLEM, "description": "Another user's, without the all-executions scope."},
    },
)
async def stream_user_executions(
    settings: SettingsDep,
    engine: EngineDep,
    feed: FeedDep,
    caller: CurrentCaller,
    user_id: Annotated[UUID, Path(examples=[EXAMPLE_USER_ID])],
    params: Annotated[UserFilters, Query()],
    last_event_id: LastEventId = None,
) -> StreamingResponse:
    """As an agent's stream, for the user's list."""
    if not caller.may_read(user_id):
        raise not_found(f"user {user_id} not found")
    where = list_filter(params, agent_id=params.agent_id, user_id=user_id, owner_id=caller.owner)
    return await event_stream(
        engine, feed, where, params.included, last_event_id, settings.stream_max_seconds
    )


async def event_stream(
    engine: AsyncEngine,
    feed: ChangeFeed,
    where: ExecutionFilter,
    include: Collection[str],
    after: str | None,
    lasting: float,
) -> StreamingResponse:
    """The stream of a list with this filter, resuming after ``after``."""
    if not feed.connected.is_set():  # just started: a moment to listen spares a reset
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(feed.connected.wait(), CONNECT_WAIT_SECONDS)
    subscription = feed.subscribe(where.agent_id, where.user_id or where.owner_id, after)
    return StreamingResponse(
        _events(engine, feed, subscription, where, include, lasting),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )


def _message(event: str | None, data: bytes | None, position: str | None) -> bytes:
    lines = []
    if event is not None:
        lines.append(f"event: {event}\n".encode())
    if data is not None:
        lines.append(b"data: " + data + b"\n")
    if position is not None:
        lines.append(f"id: {position}\n".encode())
    return b"".join(lines) + b"\n"


async def _events(
    engine: AsyncEngine,
    feed: ChangeFeed,
    subscription: Subscription,
    where: ExecutionFilter,
    include: Collection[str],
    lasting: float,
) -> AsyncIterator[bytes]:
    payloads = [name for name in queries.PAYLOADS if name in include]
    last_reset = -RESET_GAP_SECONDS
    end = time.monotonic() + lasting
    try:
        # Where the client stands, unless missed changes are still to come.
        idle = not subscription.ready.is_set()
        yield b"retry: 1000\n" + _message(None, None, feed.position if idle else None)
        while (left := end - time.monotonic()) > 0:
            try:
                await asyncio.wait_for(subscription.ready.wait(), min(KEEP_ALIVE_SECONDS, left))
            except TimeoutError:
                if time.monotonic() >= end:
                    break
                idle = not subscription.ready.is_set()
                yield b": keep-alive\n" + _message(None, None, feed.position if idle else None)
                continue
            taken, reset = subscription.take()
            ids: set[UUID] = set()
            for announcement in taken:
                found = announcement.ids_for(subscription.agent_id, subscription.user_id)
                if found is None:
                    reset = True
                    break
                ids.update(found)
            if reset:
                wait = last_reset + RESET_GAP_SECONDS - time.monotonic()
                if wait > 0:
                    await asyncio.sleep(wait)
                    subscription.take()  # what came meanwhile: this reset covers it too
                last_reset = time.monotonic()
                yield _message("reset", b"{}", feed.position)
                continue
            rows = await queries.changed_executions(engine, where, include, ids) if ids else []
            position = taken[-1].position if taken else None
            chunk = [_message("execution", render.item(row, payloads), None) for row in rows]
            chunk.append(_message(None, None, position))
            yield b"".join(chunk)
        # Time is up: the client reconnects from where it stands, on whichever worker.
        if not subscription.ready.is_set():
            yield _message(None, None, feed.position)
    except asyncio.CancelledError:
        raise
    except Exception:
        # The client reconnects with the last id it has: it loses nothing.
        log.exception("a live stream failed; ending it")
    finally:
        feed.unsubscribe(subscription)
