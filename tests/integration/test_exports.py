"""Exports: the list's filters, order and authorization, every row, in JSON Lines and CSV, from
the endpoint and from `agent-history export`."""

from __future__ import annotations

import asyncio
import csv
import io
import json
import os
import subprocess
import sys
from datetime import timedelta
from pathlib import Path
from typing import Any
from uuid import UUID, uuid4

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from agent_history.api.schemas import ExecutionSummary
from agent_history.api.settings import ApiSettings
from tests.integration.history_api_support import (
    PREFIX,
    T0,
    add_execution,
    api_client,
    bearer,
    get_ok,
    new_agent,
    new_user,
)

pytestmark = pytest.mark.integration


async def _history(engine: AsyncEngine) -> tuple[UUID, UUID, UUID]:
    """An agent with 230 runs of one user (every third failed) and 20 of another."""
    agent_id, me = await new_agent(engine)
    other = await new_user(engine)
    for i in range(250):
        owner = other if i % 12 == 0 and i < 240 else me
        status = "failed" if i % 3 == 0 else "completed"
        await add_execution(
            engine,
            agent_id,
            owner,
            start=T0 + timedelta(seconds=i // 2),  # ties on execution_start: the id decides
            status=status,
            duration=timedelta(milliseconds=i),
            input_data={"i": i, "text": 'a "quoted", multi\nline'},
        )
    return agent_id, me, other


async def _walk(client: httpx.AsyncClient, url: str, **params: Any) -> list[dict[str, Any]]:
    """Every item of a list, page by page by cursor."""
    items: list[dict[str, Any]] = []
    cursor = None
    while True:
        page = await get_ok(
            client, url, limit=100, **params, **({"cursor": cursor} if cursor else {})
        )
        items.extend(page["executions"])
        cursor = page["next_cursor"]
        if cursor is None:
            return items


def _jsonl(body: bytes) -> list[dict[str, Any]]:
    return [json.loads(line) for line in body.decode().splitlines()]


def _from_csv(cell: str, listed: Any) -> Any:
    """A CSV cell as the list's value: strings as they are, the rest as JSON text."""
    if listed is None and cell == "":
        return None
    if isinstance(listed, str):
        return cell
    return json.loads(cell)


async def test_exports_equal_the_lists_pages(
    db_engine: AsyncEngine, api_settings: ApiSettings
) -> None:
    agent_id, me, _ = await _history(db_engine)
    async with api_client(api_settings, bearer(api_settings, me)) as client:
        for params in (
            {},
            {"status": "failed", "order": "asc"},
            {"include": "input_data", "started_after": "2025-01-15T10:31:00Z"},
        ):
            listed = await _walk(client, f"{PREFIX}/agents/{agent_id}/executions", **params)
            assert listed
            url = f"{PREFIX}/agents/{agent_id}/executions/export"
            response = await client.get(url, params={**params, "format": "jsonl"})
            assert response.status_code == 200, response.text
            assert response.headers["content-type"] == "application/jsonl"
            assert response.headers["content-disposition"] == (
                f'attachment; filename="executions-agent-{agent_id}.jsonl"'
            )
            assert _jsonl(response.content) == listed

            response = await client.get(url, params={**params, "format": "csv"})
            assert response.status_code == 200, response.text
            assert response.headers["content-type"] == "text/csv; charset=utf-8"
            header, *rows = list(csv.reader(io.StringIO(response.text)))
            included = params.get("include", "")
            assert header == [
                f
                for f in ExecutionSummary.model_fields
                if f not in ("input_data", "output_data") or f in included
            ]
            assert len(rows) == len(listed)
            for row, item in zip(rows, listed, strict=True):
                assert [_from_csv(c, item.get(f)) for c, f in zip(row, header, strict=True)] == [
                    item.get(f) for f in header
                ]


async def test_exports_take_the_lists_authorization(
    db_engine: AsyncEngine, api_settings: ApiSettings
) -> None:
    agent_id, me, other = await _history(db_engine)
    async with api_client(api_settings, bearer(api_settings, me)) as client:
        mine = _jsonl((await client.get(f"{PREFIX}/agents/{agent_id}/executions/export")).content)
        assert len(mine) == 230
        assert {item["user_id"] for item in mine} == {str(me)}
        theirs = await client.get(f"{PREFIX}/users/{other}/executions/export")
        assert theirs.status_code == 404
        assert theirs.headers["content-type"] == "application/problem+json"
        paged = await client.get(f"{PREFIX}/users/{me}/executions/export", params={"cursor": "x"})
        assert paged.status_code == 422, paged.text
        bad = await client.get(f"{PREFIX}/users/{me}/executions/export", params={"format": "xml"})
        assert bad.status_code == 422, bad.text
    async with api_client(api_settings) as anonymous:
        response = await anonymous.get(f"{PREFIX}/agents/{agent_id}/executions/export")
        assert response.status_code == 401


async def test_the_command_line_export_equals_the_endpoints(
    db_engine: AsyncEngine, api_settings: ApiSettings, tmp_path: Path
) -> None:
    agent_id, me, _ = await _history(db_engine)
    environment = {**os.environ, "AGENT_HISTORY_DATABASE_URL": api_settings.database_url}
    async with api_client(api_settings, bearer(api_settings, uuid4(), all_scope=True)) as client:
        for kind, list_id, extra in (
            ("--agent", agent_id, ["--status", "failed", "--filter", f"user_id={me}"]),
            ("--user", me, ["--format", "csv", "--include", "input_data,output_data"]),
        ):
            out = tmp_path / "export"
            command = [sys.executable, "-m", "agent_history.server", "export", kind, str(list_id)]
            await asyncio.to_thread(
                subprocess.run, [*command, *extra, "-o", str(out)], env=environment, check=True
            )
            path = "agents" if kind == "--agent" else "users"
            params: dict[str, Any] = (
                {"status": "failed", "user_id": str(me)}
                if kind == "--agent"
                else {"format": "csv", "include": "input_data,output_data"}
            )
            url = f"{PREFIX}/{path}/{list_id}/executions/export"
            expected = (await client.get(url, params=params)).content
            assert len(expected) > 1000
            assert out.read_bytes() == expected
        refused = await asyncio.to_thread(
            subprocess.run,
            [
                sys.executable,
                "-m",
                "agent_history.server",
                "export",
                "--agent",
                str(agent_id),
                "--filter",
                "limit=5",
            ],
            env=environment,
            capture_output=True,
            text=True,
        )
        assert refused.returncode == 2
        assert "limit" in refused.stderr
