"""Live streams and conditional requests, on the real projector, broker and database: a change
reaches an open stream with its list's filters and authorization, Last-Event-ID resumes, and
ETags change exactly when a run does."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack
from typing import Any
from uuid import UUID, uuid4

import httpx
import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from agent_history.api.app import create_app
from agent_history.api.settings import ApiSettings
from agent_history.contract.events import CompletedData, RunRequestData
from agent_history.producer import Publisher
from agent_history.producer.settings import ProducerSettings
from agent_history.read_model.tables import agent_executions
from tests.integration.history_api_support import PREFIX, bearer
from tests.sse import Message, messages, serving
from tests.support import eventually

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("running_projector")]


@pytest.fixture
async def publisher(producer_settings: ProducerSettings) -> AsyncIterator[Publisher]:
    async with Publisher(producer_settings) as p:
        yield p


@pytest.fixture
async def base_url(api_settings: ApiSettings) -> AsyncIterator[str]:
    app = create_app(api_settings)
    async with serving(app) as url:
        await asyncio.wait_for(app.state.feed.connected.wait(), 10)
        yield url


async def _start(publisher: Publisher, agent: UUID, user: UUID, run: UUID | None = None) -> UUID:
    run = run or uuid4()
    data = RunRequestData(execution_id=run, agent_id=agent, user_id=user, input_data={"q": 1})
    await publisher.publish_started(data)
    return run


async def _complete(publisher: Publisher, agent: UUID, user: UUID, run: UUID) -> None:
    await publisher.publish_completed(
        CompletedData(execution_id=run, agent_id=agent, user_id=user, output_data="ok")
    )


async def _projected(engine: AsyncEngine, run: UUID, status: str) -> None:
    async def status_of() -> str | None:
        async with engine.connect() as conn:
            found = await conn.scalar(
                select(agent_executions.c.status).where(agent_executions.c.id == run)
            )
            return None if found is None else str(found)

    await eventually(status_of, lambda s: s == status, what=f"run {run} {status} in the table")


class Stream:
    """An open event stream and the messages read from it so far."""

    def __init__(self, response: httpx.Response) -> None:
        self.response = response
        self.seen: list[Message] = []
        self._messages = messages(response)

    async def until(self, what: str, check: Any, within: float = 20.0) -> Message:
        async def next_matching() -> Message:
            async for message in self._messages:
                self.seen.append(message)
                if check(message):
                    return message
            raise AssertionError("the stream ended")

        try:
            return await asyncio.wait_for(next_matching(), within)
        except TimeoutError:
            pytest.fail(f"no {what} within {within}s; seen: {self.seen}")

    def runs(self) -> list[dict[str, Any]]:
        return [json.loads(m.data) for m in self.seen if m.event == "execution"]


@pytest.fixture
async def open_stream(base_url: str, api_settings: ApiSettings) -> AsyncIterator[Any]:
    async with (
        httpx.AsyncClient(base_url=base_url, timeout=30) as client,
        AsyncExitStack() as stack,
    ):

        async def opened(path: str, user: UUID, **kwargs: Any) -> Stream:
            headers = {**bearer(api_settings, user), **kwargs.pop("headers", {})}
            response = await stack.enter_async_context(
                client.stream("GET", f"{PREFIX}{path}", headers=headers, **kwargs)
            )
            assert response.status_code == 200, await response.aread()
            assert response.headers["content-type"].startswith("text/event-stream")
            # Subscribed already: the stream answers once its subscription is in place.
            return Stream(response)

        yield opened


def _run_is(run: UUID, status: str) -> Any:
    def check(message: Message) -> bool:
        if message.event != "execution":
            return False
        body = json.loads(message.data)
        return bool(body["id"] == str(run) and body["status"] == status)

    return check


async def test_a_change_reaches_an_open_stream_and_another_users_never_does(
    open_stream: Any, publisher: Publisher, db_engine: AsyncEngine
) -> None:
    agent, me, other = uuid4(), uuid4(), uuid4()
    stream = await open_stream(f"/agents/{agent}/executions/stream", me)
    theirs = await _start(publisher, agent, other)
    await _projected(db_engine, theirs, "running")
    mine = await _start(publisher, agent, me)
    running = await stream.until("my run, running", _run_is(mine, "running"))
    await _complete(publisher, agent, me, mine)
    done = await stream.until("my run, completed", _run_is(mine, "completed"))
    body = json.loads(done.data)
    assert body["agent"]["id"] == str(agent)
    assert body["user"]["id"] == str(me)
    assert "input_data" not in body  # the list's shape: payloads only when included
    assert running.last_id != done.last_id
    assert str(theirs) not in {r["id"] for r in stream.runs()}, stream.seen


async def test_a_stream_takes_its_lists_filters_and_authorization(
    open_stream: Any, publisher: Publisher, base_url: str, api_settings: ApiSettings
) -> None:
    agent, me, other = uuid4(), uuid4(), uuid4()
    completed_only = await open_stream(
        f"/users/{me}/executions/stream",
        me,
        params={"status": "completed", "include": "output_data"},
    )
    async with httpx.AsyncClient(base_url=base_url, headers=bearer(api_settings, me)) as client:
        refused = await client.get(f"{PREFIX}/users/{other}/executions/stream")
        assert refused.status_code == 404, refused.text
        assert refused.headers["content-type"] == "application/problem+json"
        paged = await client.get(f"{PREFIX}/users/{me}/executions/stream", params={"limit": 5})
        assert paged.status_code == 422, paged.text
    first = await _start(publisher, agent, me)
    second = await _start(publisher, agent, me)
    await _complete(publisher, agent, me, second)
    done = await completed_only.until("the completed run", _run_is(second, "completed"))
    assert json.loads(done.data)["output_data"] == "ok"
    assert {r["id"] for r in completed_only.runs()} == {str(second)}, completed_only.seen
    assert str(first) not in {r["id"] for r in completed_only.runs()}


async def test_last_event_id_resumes_with_what_was_missed_or_resets(
    open_stream: Any, publisher: Publisher, db_engine: AsyncEngine
) -> None:
    agent, me = uuid4(), uuid4()
    stream = await open_stream(f"/agents/{agent}/executions/stream", me)
    first = await _start(publisher, agent, me)
    await stream.until("the first run", _run_is(first, "running"))
    after = await stream.until("its position", lambda m: m.event is None and m.last_id)
    position = after.last_id
    assert position is not None
    await stream.response.aclose()

    second = await _start(publisher, agent, me)
    await _complete(publisher, agent, me, first)
    await _projected(db_engine, second, "running")
    await _projected(db_engine, first, "completed")

    resumed = await open_stream(
        f"/agents/{agent}/executions/stream", me, headers={"Last-Event-ID": position}
    )
    await resumed.until("the missed completion", _run_is(first, "completed"))
    await resumed.until("the missed start", _run_is(second, "running"))
    assert not [m for m in resumed.seen if m.event == "reset"], resumed.seen

    lost = await open_stream(
        f"/agents/{agent}/executions/stream", me, headers={"Last-Event-ID": "123456789"}
    )
    await lost.until("a reset", lambda m: m.event == "reset")
    assert not lost.runs(), lost.seen


async def test_etags_answer_304_until_a_run_changes(
    base_url: str, api_settings: ApiSettings, publisher: Publisher, db_engine: AsyncEngine
) -> None:
    agent, me = uuid4(), uuid4()
    run = await _start(publisher, agent, me)
    await _projected(db_engine, run, "running")
    async with httpx.AsyncClient(base_url=base_url, headers=bearer(api_settings, me)) as client:
        for path in (
            f"/agents/{agent}/executions",
            f"/users/{me}/executions",
            f"/executions/{run}",
        ):
            url = f"{PREFIX}{path}"

            async def etag_of(url: str = url) -> str:
                response = await client.get(url)
                assert response.status_code == 200, response.text
                return response.headers["etag"]

            # The announcement of the projected run reaches the feed a moment after the commit.
            etag = await etag_of()
            await asyncio.sleep(0.5)
            etag = await etag_of()
            again = await client.get(url, headers={"If-None-Match": etag})
            assert again.status_code == 304, again.text
            assert again.headers["etag"] == etag
            assert again.content == b""
            weak = await client.get(url, headers={"If-None-Match": f'"other", W/{etag}'})
            assert weak.status_code == 304
        etags = {
            path: (await client.get(f"{PREFIX}{path}")).headers["etag"]
            for path in (
                f"/agents/{agent}/executions",
                f"/users/{me}/executions",
                f"/executions/{run}",
            )
        }
        await _complete(publisher, agent, me, run)
        await _projected(db_engine, run, "completed")
        for path, etag in etags.items():

            async def answer(path: str = path, etag: str = etag) -> int:
                response = await client.get(f"{PREFIX}{path}", headers={"If-None-Match": etag})
                return response.status_code

            await eventually(answer, lambda status: status == 200, what=f"{path} changed")
