"""Recorded events of the contract's second version (run details and usage) fold to the same
values forever: tests/fixtures/golden/v2. NEVER edit this test or its fixtures to accept a new
result (see test_golden.py, which holds the first version's)."""

from __future__ import annotations

import json
from typing import Any

import pytest

from agent_history.projector.core.changes import Changes, changes_of
from tests.unit.projector.core.test_golden import GOLDEN, MAX_BYTES, recorded

V2 = GOLDEN / "v2"
RECORDS = [json.loads(line) for line in (V2 / "records.jsonl").read_text("utf-8").splitlines()]
ROWS = json.loads((V2 / "rows.json").read_text(encoding="utf-8"))


def as_recorded(changes: Changes) -> dict[str, Any]:
    return {
        str(key): {
            "status": row.status,
            "execution_time_ms": row.execution_time_ms,
            "model": row.model,
            "tags": row.tags,
            "metadata": row.metadata,
            "parent_execution_id": row.parent_execution_id and str(row.parent_execution_id),
            "input_tokens": row.input_tokens,
            "output_tokens": row.output_tokens,
            "cost": row.cost and str(row.cost),
            "cost_currency": row.cost_currency,
        }
        for key, row in changes.rows.items()
    }


@pytest.mark.parametrize("mode", ["structured", "binary", "both"])
def test_recorded_events_of_the_second_version_fold_to_the_recorded_rows(mode: str) -> None:
    lines = [line for line in RECORDS if mode in (line["mode"], "both")]

    changes = changes_of([recorded(line, n) for n, line in enumerate(lines)], MAX_BYTES)

    assert [p.reason for p in changes.poison] == []
    assert as_recorded(changes) == ROWS["executions"]
