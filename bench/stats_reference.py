"""The stats statement before the rollups, kept here only as the benchmark's reference.

It scanned the agent's rows in one statement: a count per status, percentile_disc over
execution_time_ms, max. The same scan answers the new requests when it also sums tokens and
cost and groups by what the request groups by; that is what ``statement`` builds.
"""

from __future__ import annotations

from agent_history.contract.statuses import STATUSES

_COUNTS = ", ".join(f"count(*) FILTER (WHERE status = '{s}') AS {s}" for s in STATUSES)
_OLD = (
    "SELECT {key}" + _COUNTS + ", count(execution_time_ms) AS timed, "
    "percentile_disc(ARRAY[0.5, 0.95, 0.99]) WITHIN GROUP (ORDER BY execution_time_ms) AS pcts, "
    "max(execution_time_ms) AS max{usage} FROM agent_executions WHERE agent_id = $1{after}"
    "{group}"
)
_USAGE = (
    ", sum(input_tokens) AS input_tokens, count(input_tokens) AS input_tokens_n, "
    "sum(output_tokens) AS output_tokens, count(output_tokens) AS output_tokens_n, "
    "sum(cost) AS cost, count(cost) AS cost_n"
)
_KEYS = {
    "model": "model",
    "status": "status",
    "day": "date_trunc('day', execution_start, 'UTC')",
}


def statement(group: str | None, after: bool) -> str:
    """The scan for one request: the old statement with token and cost sums, ungrouped or
    grouped by model, by status or by day (a daily series)."""
    key = _KEYS[group] if group else ""
    return _OLD.format(
        key=f"{key} AS key, " if key else "",
        usage=_USAGE,
        after=" AND execution_start >= $2" if after else "",
        group=" GROUP BY 1" if key else "",
    )
