"""Recorded events decode and fold to the same rows forever.

tests/fixtures/golden/records.jsonl holds records exactly as they stood on the topic when this
contract was released: every event type, in both content modes (key, headers, value), including
attributes and fields that readers ignore. rows.json holds the rows they folded to then;
poison.jsonl holds records that were invalid then, each with words its reason must contain.

NEVER edit this test or its fixtures to accept a new result. A failure here means a change
broke events that are already in someone's log: make the change additive instead (new
optional fields, new event types; docs/architecture.md and README "Compatibility rules").
Columns added to the read model later are not compared; the ones recorded here must keep
their values.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC
from pathlib import Path
from typing import Any

import pytest

from agent_history.projector.core.changes import Changes, changes_of
from agent_history.projector.core.decode import Poison, decode

GOLDEN = Path(__file__).resolve().parents[3] / "fixtures" / "golden"
MAX_BYTES = 1 << 20  # the projector's default limit


@dataclass(frozen=True)
class Recorded:
    """A record as the fixture holds it, shaped as the projector reads Kafka records."""

    key: bytes | None
    value: bytes | None
    headers: Sequence[tuple[str, bytes]]
    topic: str = "agent-executions"
    partition: int = 0
    offset: int = 0


def recorded(line: dict[str, Any], offset: int) -> Recorded:
    """``value`` is UTF-8 text (or null: a tombstone); ``value_base64`` holds any other bytes."""
    value = line.get("value")
    raw = base64.b64decode(line["value_base64"]) if "value_base64" in line else value
    return Recorded(
        key=None if line["key"] is None else line["key"].encode(),
        value=raw.encode() if isinstance(raw, str) else raw,
        headers=[(name, text.encode()) for name, text in line["headers"]],
        offset=offset,
    )


def load(name: str) -> list[dict[str, Any]]:
    lines = (GOLDEN / name).read_text(encoding="utf-8").splitlines()
    return [json.loads(line) for line in lines if line.strip()]


def as_recorded(changes: Changes) -> dict[str, Any]:
    """The rows and names of a folded batch, in the JSON form rows.json records."""
    executions = {}
    for key, row in changes.rows.items():
        executions[str(key)] = {
            "agent_id": str(row.agent_id),
            "user_id": str(row.user_id),
            "status": row.status,
            "execution_start": row.execution_start.astimezone(UTC).isoformat(),
            "execution_end": row.execution_end and row.execution_end.astimezone(UTC).isoformat(),
            "execution_time_ms": row.execution_time_ms,
            "input_data": row.input_data,
            "output_data": row.output_data,
            "error_message": row.error_message,
        }
    return {
        "executions": executions,
        "agents": {str(k): v.name for k, v in changes.agents.items()},
        "users": {str(k): v.name for k, v in changes.users.items()},
    }


RECORDS = load("records.jsonl")
ROWS = json.loads((GOLDEN / "rows.json").read_text(encoding="utf-8"))


@pytest.mark.parametrize("mode", ["structured", "binary", "both"])
def test_recorded_events_fold_to_the_recorded_rows(mode: str) -> None:
    lines = [line for line in RECORDS if mode in (line["mode"], "both")]
    records = [recorded(line, offset) for offset, line in enumerate(lines)]

    changes = changes_of(records, MAX_BYTES)

    assert [p.reason for p in changes.poison] == []
    assert as_recorded(changes) == ROWS


def test_the_fixtures_hold_every_type_of_today_in_both_modes() -> None:
    # The types of the first version, by name: types added later need no golden records.
    types = {
        "ExecutionQueued",
        "ExecutionStarted",
        "ExecutionCompleted",
        "ExecutionFailed",
        "ExecutionCancelled",
    }
    for mode in ("structured", "binary"):
        seen = set()
        for line in RECORDS:
            if line["mode"] == mode:
                event = decode(recorded(line, 0), MAX_BYTES)
                assert not isinstance(event, Poison), (mode, line, event)
                seen.add(event.type)
        assert seen >= types, f"{mode}: {types - seen} missing"


@pytest.mark.parametrize("line", load("poison.jsonl"), ids=lambda line: line["case"])
def test_recorded_poison_stays_poison_for_the_same_reason(line: dict[str, Any]) -> None:
    decoded = decode(recorded(line, 0), line.get("max_bytes", MAX_BYTES))

    assert isinstance(decoded, Poison), f"{line['case']}: decoded to {decoded!r}"
    assert line["reason_contains"] in decoded.reason
