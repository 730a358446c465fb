"""A time range cut into whole rollup periods (months, days, hours, UTC) and edge rows.

Stats read the widest periods that fit inside the range, narrower ones towards its ends, and
the rows themselves only in the partial hours at its very edges. A range of a year reads about
13 month buckets, 60 day and 46 hour buckets at most, and the rows of two partial hours.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Literal, TypeAlias

Period: TypeAlias = Literal["hour", "day", "month"]
PERIODS: tuple[Period, ...] = ("hour", "day", "month")


@dataclass(frozen=True)
class Span:
    """[start, end) of whole buckets of ``period``, or of rows when period is None; None is
    open (no bound)."""

    period: Period | None
    start: datetime | None
    end: datetime | None


def floor_to(moment: datetime, period: Period) -> datetime:
    moment = moment.replace(minute=0, second=0, microsecond=0)
    if period == "hour":
        return moment
    moment = moment.replace(hour=0)
    return moment if period == "day" else moment.replace(day=1)


def ceil_to(moment: datetime, period: Period) -> datetime:
    floor = floor_to(moment, period)
    if floor == moment:
        return moment
    if period == "hour":
        return floor + timedelta(hours=1)
    if period == "day":
        return floor + timedelta(days=1)
    return (floor + timedelta(days=32)).replace(day=1)


def _before(a: datetime | None, b: datetime | None) -> bool:
    """a < b, where None is the open end on its side (a: -inf, b: +inf)."""
    return a is None or b is None or a < b


def spans(start: datetime | None, end: datetime | None, coarsest: Period = "month") -> list[Span]:
    """[start, end) as rollup spans no coarser than ``coarsest``, and edge-row spans."""
    if not _before(start, end):
        return []
    low = None if start is None else ceil_to(start, "hour")
    high = None if end is None else floor_to(end, "hour")
    if not _before(low, high):
        return [Span(None, start, end)]
    out = []
    if start is not None and low is not None and start < low:
        out.append(Span(None, start, low))
    if end is not None and high is not None and high < end:
        out.append(Span(None, high, end))
    levels = PERIODS[: PERIODS.index(coarsest) + 1]
    for finer, coarser in itertools.pairwise(levels):
        wide_low = None if low is None else ceil_to(low, coarser)
        wide_high = None if high is None else floor_to(high, coarser)
        if not _before(wide_low, wide_high):
            out.append(Span(finer, low, high))
            return out
        if low is not None and wide_low is not None and low < wide_low:
            out.append(Span(finer, low, wide_low))
        if high is not None and wide_high is not None and wide_high < high:
            out.append(Span(finer, wide_high, high))
        low, high = wide_low, wide_high
    out.append(Span(levels[-1], low, high))
    return out
