"""A range cut into rollup periods and edge rows covers it exactly, once."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from hypothesis import given
from hypothesis import strategies as st

from agent_history.api.spans import Span, ceil_to, floor_to, spans

T = datetime(2025, 1, 15, 10, 30, 17, tzinfo=UTC)
_LOW = datetime(2024, 1, 1, tzinfo=UTC)
_HIGH = datetime(2027, 1, 1, tzinfo=UTC)


def test_everything_is_the_month_buckets() -> None:
    assert spans(None, None) == [Span("month", None, None)]


def test_a_range_inside_one_hour_is_rows_only() -> None:
    assert spans(T, T + timedelta(minutes=10)) == [Span(None, T, T + timedelta(minutes=10))]


def test_a_range_cut_mid_hour_has_edges_hours_days_and_months() -> None:
    end = datetime(2025, 4, 2, 7, 5, tzinfo=UTC)
    assert spans(T, end) == [
        Span(None, T, datetime(2025, 1, 15, 11, tzinfo=UTC)),
        Span(None, datetime(2025, 4, 2, 7, tzinfo=UTC), end),
        Span("hour", datetime(2025, 1, 15, 11, tzinfo=UTC), datetime(2025, 1, 16, tzinfo=UTC)),
        Span("hour", datetime(2025, 4, 2, tzinfo=UTC), datetime(2025, 4, 2, 7, tzinfo=UTC)),
        Span("day", datetime(2025, 1, 16, tzinfo=UTC), datetime(2025, 2, 1, tzinfo=UTC)),
        Span("day", datetime(2025, 4, 1, tzinfo=UTC), datetime(2025, 4, 2, tzinfo=UTC)),
        Span("month", datetime(2025, 2, 1, tzinfo=UTC), datetime(2025, 4, 1, tzinfo=UTC)),
    ]


def test_a_series_never_reads_periods_coarser_than_its_interval() -> None:
    assert {s.period for s in spans(None, T, "day")} == {"day", "hour", None}
    assert {s.period for s in spans(T, None, "hour")} == {"hour", None}


def _length(span: Span, period: str | None) -> bool:
    """Bucket spans start and end on their period's boundaries."""
    return all(
        m is None or period is None or floor_to(m, period) == m  # type: ignore[arg-type]
        for m in (span.start, span.end)
    )


@given(
    start=st.none() | st.datetimes(_LOW, _HIGH, timezones=st.just(UTC)),
    end=st.none() | st.datetimes(_LOW, _HIGH, timezones=st.just(UTC)),
    coarsest=st.sampled_from(["hour", "day", "month"]),
)
def test_spans_tile_the_range(start: datetime | None, end: datetime | None, coarsest: str) -> None:
    cut = spans(start, end, coarsest)  # type: ignore[arg-type]
    if start is not None and end is not None and start >= end:
        assert cut == []
        return
    # Every moment of the range is in exactly one span; none outside it.
    probes = [m for s in cut for m in (s.start, s.end) if m is not None]
    probes += [p + d for p in probes for d in (timedelta(microseconds=-1), timedelta(0))]
    for moment in probes:
        inside = (start is None or moment >= start) and (end is None or moment < end)
        holding = [
            s
            for s in cut
            if (s.start is None or moment >= s.start) and (s.end is None or moment < s.end)
        ]
        assert len(holding) == (1 if inside else 0), (moment, cut)
    assert all(_length(s, s.period) for s in cut)
    assert all(ceil_to(floor_to(T, p), p) == floor_to(T, p) for p in ("hour", "day", "month"))
