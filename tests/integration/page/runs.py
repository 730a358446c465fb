"""Runs for the page's tests, published through the real producer, and signing a browser in."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any
from uuid import UUID

import httpx
from playwright.async_api import BrowserContext, Page

from agent_history.api.auth import mint_token
from agent_history.api.login import login_url, mint_login_code
from agent_history.api.settings import ApiSettings
from agent_history.contract.events import (
    CancelledData,
    CompletedData,
    Cost,
    ExecutionData,
    ExecutionStarted,
    FailedData,
    RunRequestData,
    Usage,
)
from agent_history.producer import Publisher
from agent_history.producer.envelope import EndData, end_of, stamp
from tests.integration.page.conftest import ready, settle


@dataclass
class Spec:
    """One run to publish: its end (None: still running) and what it carries."""

    user_id: UUID
    status: str | None = "completed"
    model: str | None = "gpt-4o"
    tags: list[str] = field(default_factory=list)
    parent: UUID | None = None
    input_data: dict[str, Any] = field(default_factory=lambda: {"prompt": "hello"})
    output_data: Any = None
    execution_id: UUID = field(default_factory=uuid.uuid4)
    agent_name: str = "Browser agent"
    # When it started and how long it took (None: now, and as fast as the publisher goes):
    # the screenshots want runs that look like real ones.
    started_at: datetime | None = None
    took: timedelta = timedelta(0)


async def _emit(
    publisher: Publisher, kind: type[Any], data: ExecutionData, at: datetime | None
) -> None:
    event = stamp(kind, data, "tests/page")
    await publisher.publish(event if at is None else event.model_copy(update={"time": at}))


async def publish(publisher: Publisher, agent_id: UUID, spec: Spec) -> UUID:
    ids = {"execution_id": spec.execution_id, "agent_id": agent_id, "user_id": spec.user_id}
    started = RunRequestData(
        **ids,
        input_data=spec.input_data,
        agent_name=spec.agent_name,
        user_name=f"user-{str(spec.user_id)[:4]}",
        model=spec.model,
        tags=spec.tags or None,
        parent_execution_id=spec.parent,
    )
    await _emit(publisher, ExecutionStarted, started, spec.started_at)
    await end(publisher, agent_id, spec)
    return spec.execution_id


async def end(publisher: Publisher, agent_id: UUID, spec: Spec) -> None:
    ids = {"execution_id": spec.execution_id, "agent_id": agent_id, "user_id": spec.user_id}
    usage = Usage(input_tokens=120, output_tokens=30, cost=Cost(amount=Decimal("0.0012")))
    data: EndData
    if spec.status == "completed":
        data = CompletedData(**ids, output_data=spec.output_data, usage=usage)
    elif spec.status == "failed":
        data = FailedData(**ids, error_message="ToolError: boom")
    elif spec.status == "cancelled":
        data = CancelledData(**ids, reason="stopped")
    else:
        return
    at = None if spec.started_at is None else spec.started_at + spec.took
    await _emit(publisher, end_of(data), data, at)


async def projected(
    settings: ApiSettings, base: str, agent_id: UUID, count: int, **params: Any
) -> dict[str, Any]:
    """The agent's first page once ``count`` runs of it are in the read model."""
    token = mint_token(settings, uuid.uuid4(), all_scope=True)
    path = f"{base}/api/v1/agent-studio/agents/{agent_id}/executions"
    async with httpx.AsyncClient(headers={"Authorization": f"Bearer {token}"}) as client:

        async def page() -> dict[str, Any] | None:
            body: dict[str, Any] = (await client.get(path, params=params)).json()
            return body if body.get("total") == count else None

        found: dict[str, Any] = await settle(page, f"{count} runs of agent {agent_id} projected")
        return found


async def signed_in(
    browser: BrowserContext,
    settings: ApiSettings,
    base: str,
    user_id: UUID,
    path: str,
    *,
    all_scope: bool = False,
    which: str = "history",
) -> Page:
    """A tab signed in as ``user_id`` through a one-time login link to ``path``."""
    page = await browser.new_page()
    code = mint_login_code(settings, user_id, all_scope=all_scope)
    await page.goto(login_url(base, code, path))
    await ready(page, which)
    return page
