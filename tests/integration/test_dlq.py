"""`agent-history dlq` on the real broker and database: dead letters are listed, filtered, shown
whole, and redriven after an upgrade, each once; one the reader still rejects comes back."""

from __future__ import annotations

import asyncio
import json
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine
from typer.testing import CliRunner

from agent_history.contract.events import DLQ_REDRIVEN_FROM
from agent_history.contract.settings import environment_of
from agent_history.projector.dlq import DeadLetter, DeadLetterQueue, matching
from agent_history.projector.settings import ProjectorSettings
from agent_history.server.bootstrap import build_dead_letter_queue
from agent_history.server.cli import app
from tests.conftest import projecting
from tests.faults_support import stored_rows
from tests.integration.test_poison import HEADERS, encoded, envelope
from tests.support import caught_up, eventually

pytestmark = pytest.mark.integration

SMALL = 4096  # the size limit before the "upgrade"


async def _letters(queue: DeadLetterQueue, count: int) -> list[DeadLetter]:
    return await eventually(queue.read, lambda got: len(got) >= count, what=f"{count} letters")


async def _cli(settings: ProjectorSettings, *args: str) -> str:
    """The command's output, run as a user runs it: its settings from the environment."""
    env = {k: v for k, v in environment_of(settings).items() if k.startswith("AGENT_HISTORY_")}
    result = await asyncio.to_thread(CliRunner().invoke, app, ["dlq", *args], env=env)
    assert result.exit_code == 0, result.output
    return result.output


async def test_dead_letters_are_listed_shown_and_redriven_each_once(
    projector_settings: ProjectorSettings, db_engine: AsyncEngine, producer: Any
) -> None:
    small = projector_settings.model_copy(update={"max_event_bytes": SMALL})
    big, odd = envelope(), envelope()
    big["data"]["input_data"] = {"blob": "x" * SMALL}  # valid, but over the old limit
    odd["type"] = "ExecutionExploded"  # a type no reader knows yet
    sent = {}
    async with projecting(small):
        for name, event in (("big", big), ("odd", odd)):
            headers = [*HEADERS, ("x-case", name.encode())]
            key = event["subject"].encode()
            meta = await producer.send_and_wait(
                small.topic, encoded(event), key=key, headers=headers
            )
            sent[name] = (meta, key, encoded(event), headers)
        metas = [meta for meta, *_ in sent.values()]
        await caught_up(db_engine, small.consumer_group, small.topic, metas)

    async with build_dead_letter_queue(projector_settings) as queue:
        letters = await _letters(queue, 2)
        by_case = {d.header("x-case"): d for d in letters}
        assert set(by_case) == {"big", "odd"}, [d.headers for d in letters]
        for name, (meta, key, value, headers) in sent.items():
            d = by_case[name]
            assert (d.key, d.value, d.original_headers) == (key, value, headers)
            assert d.origin == f"{small.topic}[{meta.partition}]@{meta.offset}"
        assert f"over the {SMALL}" in by_case["big"].reason
        assert by_case["odd"].reason == "unknown type: ExecutionExploded"
        assert matching(letters, reason="UNKNOWN TYPE") == [by_case["odd"]]
        assert await queue.read(since=datetime.now(UTC) + timedelta(hours=1)) == []

        listed = await _cli(projector_settings, "list", "--reason", "unknown type")
        assert "unknown type: ExecutionExploded" in listed
        assert by_case["odd"].position in listed
        assert "over the" not in listed
        shown = await _cli(projector_settings, "show", by_case["big"].position)
        assert "dlq-reason: " in shown
        assert "x-case: big" in shown
        assert json.loads(shown[shown.index("value:\n") + 7 :]) == big

        # The upgrade: the default size limit. The redriven record is projected, once.
        async with projecting(projector_settings):
            done = await queue.redrive([by_case["big"]])
            assert done.sent == [by_case["big"]]
            assert done.skipped == []
            agent = uuid.UUID(big["data"]["agent_id"])
            rows = await eventually(
                lambda: stored_rows(db_engine, [agent]), bool, what="the redriven run's row"
            )
            assert list(rows) == [uuid.UUID(big["subject"])]
            again = await queue.redrive(letters)  # both: "big" again, and "odd" for the 1st time
            assert (again.sent, again.skipped) == ([by_case["odd"]], [by_case["big"]])
            # Still unknown: dead-lettered again, saying which dead letter it was redriven from.
            back = (await _letters(queue, 3))[-1]
            assert back.header(DLQ_REDRIVEN_FROM) == by_case["odd"].position
            assert back.reason == by_case["odd"].reason
            assert (back.key, back.value) == (by_case["odd"].key, by_case["odd"].value)
            assert back.original_headers == by_case["odd"].original_headers
            # A redrive by reason leaves it out (it would go round for ever); by name, it goes.
            output = await _cli(projector_settings, "redrive", "--reason", "unknown type")
            assert "0 redriven, 1 skipped (redriven before), 1 left out" in output
            listed = await _cli(projector_settings, "list")
            assert f"(again, redriven from {by_case['odd'].position})" in listed
        assert len(await queue.read()) == 3, "nothing redriven twice"
