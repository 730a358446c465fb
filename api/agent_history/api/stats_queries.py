"""The statements behind an agent's stats: one per request, from rollups or from rows.

Both return rows of ``kind`` 'sums' (per level, group, series bucket, status and currency:
runs, timed runs, token sums and counts, cost sum). ``level`` is 'all' (every run of the range)
or 'group' (per value of group_by); ``s`` is the series bucket, NULL for the level's total.

From rollups (``rollup_statement``): sums of execution_rollups over whole periods plus the rows
of the partial hours at the range's edges (through the agent history index), and rows of kind
'sketch' (per group and series bucket: ``lo`` and ``counts``, a duration histogram in the
layout of the sketch tables, per model, per status or over both, several per group and
bucket), which api.stats merges and ranks. From rows (``row_statement``): the rows themselves,
and rows of kind 'pct' (per level, group and series bucket: the p50, p95, p99 and max
duration, exact by percentile_disc).
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from typing import Final, Literal, NamedTuple, TypeAlias, TypeGuard

from sqlalchemy import TextClause, text

from agent_history.api.spans import Span
from agent_history.read_model.tables import (
    SKETCHED_BY_DIFFERENCE,
    execution_duration_sketches,
    execution_duration_sketches_all_models,
    execution_duration_sketches_by_status,
)

GroupBy: TypeAlias = Literal["model", "user", "status", "tag"]
RolledUp: TypeAlias = Literal["model", "status"]


class _Sketched(NamedTuple):
    """A sketch table a request reads: the group key its rows go under (SQL), and which of the
    edge rows (SQL over them) stand in for the table's rows at the range's edges."""

    key: str
    table: str
    edges: str = "true"


# The groupings the rollups keep (None: not grouped), and the sketch tables each reads.
# Grouped by status, the all-models sketch too, under a NULL key: SKETCHED_BY_DIFFERENCE's
# sketch is it less the other statuses' (api.stats).
SKETCHES: Final[Mapping[RolledUp | None, tuple[_Sketched, ...]]] = {
    None: (_Sketched("''", execution_duration_sketches_all_models.name),),
    "model": (_Sketched("model", execution_duration_sketches.name),),
    "status": (
        _Sketched("NULL::text", execution_duration_sketches_all_models.name),
        _Sketched(
            "status",
            execution_duration_sketches_by_status.name,
            f"status <> '{SKETCHED_BY_DIFFERENCE}'",
        ),
    ),
}


def rolled_up(group_by: GroupBy | None) -> TypeGuard[RolledUp | None]:
    return group_by in SKETCHES


Interval: TypeAlias = Literal["hour", "day"]
# A span's shape: its period and which of its bounds are given.
SpanShape: TypeAlias = tuple[str | None, bool, bool]

_FACTS = "n, timed, input_tokens, input_tokens_n, output_tokens, output_tokens_n, cost"
_SUMS = ", ".join(f"sum({c})::numeric AS {c}" for c in _FACTS.split(", "))
_NO_PCT = "NULL::bigint AS p50, NULL::bigint AS p95, NULL::bigint AS p99, NULL::bigint AS mx"
_NO_SKETCH = "NULL::smallint AS lo, NULL::bigint[] AS counts"
_NO_SUMS = ", ".join(f"NULL::numeric AS {c}" for c in _FACTS.split(", "))
_QUANTILES = {"p50": 0.5, "p95": 0.95, "p99": 0.99}


def shape(spans: list[Span]) -> tuple[SpanShape, ...]:
    return tuple((s.period, s.start is not None, s.end is not None) for s in spans)


def span_values(spans: list[Span]) -> dict[str, object]:
    values: dict[str, object] = {}
    for i, s in enumerate(spans):
        values.update({f"lo{i}": s.start, f"hi{i}": s.end})
    return {k: v for k, v in values.items() if v is not None}


def _bounds(i: int, has_lo: bool, has_hi: bool, column: str) -> str:
    parts = [f"{column} >= :lo{i}" if has_lo else "", f"{column} < :hi{i}" if has_hi else ""]
    return " AND ".join(p for p in parts if p) or "true"


def _series(interval: Interval | None, column: str) -> str:
    return f"date_trunc('{interval}', {column}, 'UTC')" if interval else "NULL::timestamptz"


def _sets(interval: Interval | None, *keys: str) -> str:
    """Group by keys with the series bucket, and (with a series) without it too."""
    inner = ", ".join(("g", *keys))
    if interval is None:
        return f"{inner}, s"
    return f"GROUPING SETS (({inner}, s), ({inner}))"


def _whole(i: int, period: str, has_lo: bool, has_hi: bool) -> str:
    """The rollup rows of span i: the agent's buckets of its period within its bounds."""
    return (
        f"agent_id = :agent_id AND period = '{period}' AND "
        f"{_bounds(i, has_lo, has_hi, 'bucket_start')}"
    )


@functools.cache
def rollup_statement(
    spans: tuple[SpanShape, ...], group_by: RolledUp | None, interval: Interval | None
) -> TextClause:
    """Stats of one agent over spans (api.spans), grouped by a key of SKETCHES."""
    # Each edge on its own, so each is one range of the agent history index.
    columns = (
        "SELECT COALESCE(model, '') AS model, status, execution_start, "
        "COALESCE(cost_currency, '') AS cost_currency, execution_time_ms AS ms, "
        "input_tokens, output_tokens, cost FROM agent_executions WHERE agent_id = :agent_id AND "
    )
    edges = [
        columns + _bounds(i, lo, hi, "execution_start")
        for i, (period, lo, hi) in enumerate(spans)
        if period is None
    ]
    edge = " UNION ALL ".join(edges) if edges else columns + "false"
    whole = [_whole(i, p, lo, hi) for i, (p, lo, hi) in enumerate(spans) if p is not None]
    ctes = [f"edge AS MATERIALIZED ({edge})"]
    outputs = []
    s, edge_s = _series(interval, "bucket_start"), _series(interval, "execution_start")
    for level, key in [("all", "''")] + ([("group", group_by)] if group_by else []):
        facts = [
            f"SELECT {key} AS g, {s} AS s, status, cost_currency, {_FACTS} "
            f"FROM execution_rollups WHERE {where}"
            for where in whole
        ]
        facts.append(
            f"SELECT {key} AS g, {edge_s} AS s, status, cost_currency, 1, "
            "(ms IS NOT NULL)::int, COALESCE(input_tokens, 0), (input_tokens IS NOT NULL)::int, "
            "COALESCE(output_tokens, 0), (output_tokens IS NOT NULL)::int, COALESCE(cost, 0) "
            "FROM edge"
        )
        ctes.append(f"{level}_f ({_FACTS_COLUMNS}) AS ({' UNION ALL '.join(facts)})")
        outputs.append(
            f"SELECT 'sums' AS kind, '{level}' AS level, g, s, status, cost_currency, {_SUMS}, "
            f"{_NO_SKETCH} FROM {level}_f GROUP BY {_sets(interval, 'status', 'cost_currency')} "
            "HAVING sum(n) <> 0"
        )
    # The duration sketches per group and series bucket as stored (a few dozen arrays; the
    # grouping's tables), the edge rows' durations as one-bucket arrays: api.stats merges them
    # into every level and ranks them, faster than unnesting and ranking the same values here.
    sketch = []
    for key, table, edge_rows in SKETCHES[group_by]:
        sketch += [
            f"SELECT {key} AS g, {s} AS s, lo, counts FROM {table} WHERE {where}" for where in whole
        ]
        sketch.append(
            f"SELECT {key} AS g, {edge_s} AS s, execution_duration_bucket(ms) AS lo, "
            f"ARRAY[count(*)] AS counts FROM edge WHERE ms IS NOT NULL AND {edge_rows} "
            "GROUP BY 1, 2, 3"
        )
    outputs.append(
        f"SELECT 'sketch', NULL, g, s, NULL, NULL, {_NO_SUMS}, lo, counts "
        f"FROM ({' UNION ALL '.join(sketch)}) k"
    )
    return text(f"WITH {', '.join(ctes)} {' UNION ALL '.join(outputs)}")


_FACTS_COLUMNS = f"g, s, status, cost_currency, {_FACTS}"
_ROW_KEYS: dict[str, str] = {
    "model": "COALESCE(e.model, '')",
    "user": "e.user_id::text",
    "status": "e.status",
    "tag": "COALESCE(t.tag, '')",
}


@functools.cache
def row_statement(
    conditions: tuple[str, ...], group_by: GroupBy | None, interval: Interval | None
) -> TextClause:
    """Stats from the rows that ``conditions`` (SQL over ``e``) select."""
    where = " AND ".join(conditions)
    s = _series(interval, "e.execution_start")
    outputs = []
    for level, key in [("all", "''")] + ([("group", _ROW_KEYS[group_by])] if group_by else []):
        tags = " LEFT JOIN LATERAL unnest(e.tags) AS t(tag) ON true" if group_by == "tag" else ""
        rows = (
            f"SELECT {key} AS g, {s} AS s, e.status, COALESCE(e.cost_currency, '') AS "
            "cost_currency, e.execution_time_ms AS ms, e.input_tokens, e.output_tokens, e.cost "
            f"FROM agent_executions e{tags if level == 'group' else ''} WHERE {where}"
        )
        pcts = ", ".join(
            f"percentile_disc({q}) WITHIN GROUP (ORDER BY ms) AS {name}"
            for name, q in _QUANTILES.items()
        )
        outputs += [
            f"SELECT 'sums' AS kind, '{level}' AS level, g, s, status, cost_currency, "
            "count(*)::numeric AS n, count(ms)::numeric AS timed, "
            "COALESCE(sum(input_tokens), 0)::numeric AS input_tokens, "
            "count(input_tokens)::numeric AS input_tokens_n, "
            "COALESCE(sum(output_tokens), 0)::numeric AS output_tokens, "
            "count(output_tokens)::numeric AS output_tokens_n, "
            f"COALESCE(sum(cost), 0)::numeric AS cost, {_NO_PCT} "
            f"FROM ({rows}) r GROUP BY {_sets(interval, 'status', 'cost_currency')}",
            f"SELECT 'pct', '{level}', g, s, NULL, NULL, {_NO_SUMS}, {pcts}, max(ms) "
            f"FROM ({rows}) r WHERE ms IS NOT NULL GROUP BY {_sets(interval)}",
        ]
    return text(" UNION ALL ".join(outputs))
