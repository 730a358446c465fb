"""An agent's execution statistics: counts by status, success rate, durations, tokens and cost,
optionally grouped (model, user, status, tag) and as a time series (hour, day).

One statement per request (api.stats_queries). Over every user's runs and grouped by nothing,
model or status, it merges the rollups the triggers keep (migrations 0006, 0010 and 0016): the
cost grows with the number of buckets in the range, never with runs; counts and sums are exact
(the partial hours at the range's edges are counted from the rows), percentiles come from the
duration sketches (merged here, api.sketches), within 1 % of the nearest-rank value. Narrowed
to one caller's own runs, or grouped by user or tag, it reads the rows: exact percentiles
(percentile_disc), a cost that grows with the runs."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any, Literal, TypeAlias
from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy.ext.asyncio import AsyncEngine

from agent_history.api.filters import ExecutionFilter
from agent_history.api.queries import fetch
from agent_history.api.sketches import Histogram
from agent_history.api.spans import spans
from agent_history.api.stats_queries import (
    GroupBy,
    Interval,
    rolled_up,
    rollup_statement,
    row_statement,
    shape,
    span_values,
)
from agent_history.contract.statuses import STATUSES, TERMINAL_STATUSES
from agent_history.read_model.tables import SKETCH_ERROR, SKETCHED_BY_DIFFERENCE, bucket_value

# A tally's level ('all' or 'group'), group key and series bucket (None: the level's total).
_Key: TypeAlias = tuple[str, str, datetime | None]
APPROXIMATE = f"approximate, {SKETCH_ERROR:.0%} relative error"
EXACT = "exact"


class _Stats(BaseModel):
    model_config = ConfigDict(frozen=True)


class StatusCounts(_Stats):
    """How many executions have each status; every status is present, zeros included."""

    pending: int
    running: int
    completed: int
    failed: int
    cancelled: int
    timed_out: int


class Durations(_Stats):
    """execution_time_ms over the executions whose duration is known (ended after starting).

    Exact (`percentiles: exact`): nearest rank (percentile_disc), each a duration some execution
    had. Approximate: within 1 % of that value (the max too). Null when no duration is known.
    """

    count: int = Field(description="Executions with a known execution_time_ms (exact).")
    p50: int | float | None
    p95: int | float | None
    p99: int | float | None
    max: int | float | None


class TokenSum(_Stats):
    sum: int = Field(description="Exact sum over the runs that reported this count.")
    count: int = Field(description="Runs that reported it.")
    average: float | None = Field(description="sum / count; null when count is 0.")


class Tokens(_Stats):
    input: TokenSum
    output: TokenSum


class CostSum(_Stats):
    sum: Decimal = Field(description="Exact, as a decimal string.")
    count: int = Field(description="Runs that reported a cost in this currency.")
    average: Decimal | None = Field(description="sum / count, as a decimal string.")


class Summary(_Stats):
    total: int = Field(description="Executions counted, of any status.")
    counts: StatusCounts
    success_rate: float | None = Field(
        description="completed / (completed + failed + cancelled + timed_out): a run a "
        "watchdog gave up on counts as not successful; null when none has ended."
    )
    execution_time_ms: Durations
    tokens: Tokens
    cost: dict[str, CostSum] = Field(description="Per ISO 4217 currency; runs with a cost only.")


class SeriesPoint(Summary):
    start: datetime = Field(description="The bucket's start (UTC); it covers one interval.")


class Group(Summary):
    key: str | None = Field(description="The model, user id, status or tag; null: none.")
    series: list[SeriesPoint] | None = None


class ExecutionStats(Summary):
    """Statistics over an agent's executions that started in [started_after, started_before)."""

    agent_id: UUID
    started_after: datetime | None
    started_before: datetime | None
    percentiles: str = Field(
        description=f"'{EXACT}' or '{APPROXIMATE}' (from the rollups' duration sketch)."
    )
    source: Literal["rollups", "rows"] = Field(
        description="rollups: merged per-period buckets, edge hours counted from rows; "
        "rows: the executions themselves (one caller's own, or grouped by user or tag)."
    )
    group_by: GroupBy | None = None
    interval: Interval | None = None
    groups: list[Group] | None = None
    series: list[SeriesPoint] | None = None


@dataclass
class _Tally:
    counts: dict[str, int] = field(default_factory=lambda: dict.fromkeys(STATUSES, 0))
    timed: int = 0
    sums: dict[str, Decimal] = field(default_factory=lambda: defaultdict(Decimal))
    cost: dict[str, list[Decimal]] = field(default_factory=dict)
    pct: tuple[Any, ...] = (None, None, None, None)

    def add(self, row: Any) -> None:
        self.counts[row["status"]] += int(row["n"])
        self.timed += int(row["timed"])
        for name in ("input_tokens", "input_tokens_n", "output_tokens", "output_tokens_n"):
            self.sums[name] += row[name]
        if row["cost_currency"]:
            spent = self.cost.setdefault(row["cost_currency"], [Decimal(0), Decimal(0)])
            spent[0] += row["cost"]
            spent[1] += row["n"]

    def summary(self) -> dict[str, Any]:
        ended = sum(self.counts[status] for status in TERMINAL_STATUSES)

        def tokens(kind: str) -> TokenSum:
            total, n = int(self.sums[kind]), int(self.sums[f"{kind}_n"])
            return TokenSum(sum=total, count=n, average=total / n if n else None)

        p50, p95, p99, top = self.pct
        return {
            "total": sum(self.counts.values()),
            "counts": StatusCounts.model_validate(self.counts),
            "success_rate": self.counts["completed"] / ended if ended else None,
            "execution_time_ms": Durations(count=self.timed, p50=p50, p95=p95, p99=p99, max=top),
            "tokens": Tokens(input=tokens("input_tokens"), output=tokens("output_tokens")),
            "cost": {
                currency: CostSum(sum=s, count=int(n), average=s / n if n else None)
                for currency, (s, n) in sorted(self.cost.items())
                if n
            },
        }


async def execution_stats(
    engine: AsyncEngine,
    where: ExecutionFilter,
    group_by: GroupBy | None = None,
    interval: Interval | None = None,
) -> ExecutionStats:
    """The statistics of the executions ``where`` selects, which must name an agent."""
    assert where.agent_id is not None
    values: dict[str, Any] = {"agent_id": where.agent_id}
    # Over every user's runs, grouped as the rollups are: from them; else from the rows.
    if where.owner_id is None and rolled_up(group_by):
        from_rows = False
        cut = spans(where.started_after, where.started_before, interval or "month")
        statement = rollup_statement(shape(cut), group_by, interval)
        values.update(span_values(cut))
    else:
        from_rows = True
        conditions = ["e.agent_id = :agent_id"]
        for name, sql in (
            ("owner_id", "e.user_id = :owner_id"),
            ("started_after", "e.execution_start >= :started_after"),
            ("started_before", "e.execution_start < :started_before"),
        ):
            if getattr(where, name) is not None:
                conditions.append(sql)
                values[name] = getattr(where, name)
        statement = row_statement(tuple(conditions), group_by, interval)
    tallies: dict[_Key, _Tally] = defaultdict(_Tally)
    sketches: dict[tuple[str | None, datetime | None], Histogram] = defaultdict(Histogram)
    for row in await fetch(engine, statement, values):
        if row["kind"] == "sums":
            tallies[(row["level"], row["g"], row["s"])].add(row)
        elif row["kind"] == "pct":
            pct = (row["p50"], row["p95"], row["p99"], row["mx"])
            tallies[(row["level"], row["g"], row["s"])].pct = pct
        elif row["counts"]:
            sketches[(row["g"], row["s"])].add(row["lo"], row["counts"])
    for key, sketch in _levels(_by_difference(sketches, group_by), group_by is not None).items():
        if key in tallies:
            tallies[key].pct = tuple(None if b is None else bucket_value(b) for b in sketch.ranks())
    return _assemble(where, from_rows, group_by, interval, tallies)


def _by_difference(
    sketches: dict[tuple[str | None, datetime | None], Histogram], group_by: GroupBy | None
) -> dict[tuple[str, datetime | None], Histogram]:
    """The sketches per group and series bucket. Grouped by status, the statement sends none for
    SKETCHED_BY_DIFFERENCE (migration 0016 keeps no row for it) but one over every status per
    series bucket (key None): its sketch is that one less the other statuses'."""
    others = {(g, s): sketch for (g, s), sketch in sketches.items() if g is not None}
    if group_by != "status":
        return others
    every = {s: sketch for (g, s), sketch in sketches.items() if g is None}
    for (_, s), sketch in others.items():
        # One statement, one snapshot: a status's runs in a bucket are among every status's.
        every[s].subtract(sketch)
    return {**others, **{(SKETCHED_BY_DIFFERENCE, s): sketch for s, sketch in every.items()}}


def _levels(
    sketches: dict[tuple[str, datetime | None], Histogram], grouped: bool
) -> dict[_Key, Histogram]:
    """Each tally's sketch, from the sketches per group and series bucket: each merged once
    more into its group's total, its bucket over all groups and the total of all."""
    levels: dict[_Key, Histogram] = defaultdict(Histogram)
    for (g, s), sketch in sketches.items():
        own: _Key = ("group", g, s) if grouped else ("all", "", s)
        levels[own] = sketch
        wider = {("group", g, None), ("all", "", s), ("all", "", None)} if grouped else set()
        if s is not None:
            wider.add(("all", "", None))
        for key in wider - {own}:
            levels[key].add(sketch.lo, sketch.counts)
    return levels


def _series(tallies: dict[_Key, _Tally], level: str, g: str) -> list[SeriesPoint]:
    points = {s: t for (lv, key, s), t in tallies.items() if (lv, key) == (level, g) and s}
    return [SeriesPoint(start=s, **points[s].summary()) for s in sorted(points)]


def _assemble(
    where: ExecutionFilter,
    from_rows: bool,
    group_by: GroupBy | None,
    interval: Interval | None,
    tallies: dict[_Key, _Tally],
) -> ExecutionStats:
    groups = None
    if group_by is not None:
        keys = sorted({g for (level, g, s) in tallies if level == "group" and s is None})
        groups = [
            Group(
                key=g or None,
                series=_series(tallies, "group", g) if interval else None,
                **tallies[("group", g, None)].summary(),
            )
            for g in keys
        ]
        groups.sort(key=lambda group: -group.total)
    assert where.agent_id is not None
    return ExecutionStats(
        agent_id=where.agent_id,
        started_after=where.started_after,
        started_before=where.started_before,
        percentiles=EXACT if from_rows else APPROXIMATE,
        source="rows" if from_rows else "rollups",
        group_by=group_by,
        interval=interval,
        groups=groups,
        series=_series(tallies, "all", "") if interval else None,
        **tallies[("all", "", None)].summary(),
    )
