"""Histograms merged in Python: the same buckets and nearest ranks as the values they count."""

from __future__ import annotations

from collections import Counter

from hypothesis import given
from hypothesis import strategies as st

from agent_history.api.sketches import QUANTILES, Histogram

_ARRAYS = st.lists(
    st.tuples(st.integers(-1, 60), st.lists(st.integers(0, 5), max_size=12)), max_size=8
)


@given(arrays=_ARRAYS)
def test_merged_arrays_count_every_bucket_and_rank_like_the_values(
    arrays: list[tuple[int, list[int]]],
) -> None:
    merged = Histogram()
    values: Counter[int] = Counter()
    for lo, counts in arrays:
        merged.add(lo, counts)
        for k, n in enumerate(counts):
            values[lo + k] += n

    assert {merged.lo + k: n for k, n in enumerate(merged.counts) if n} == +values
    ordered = sorted(values.elements())
    if not ordered:
        assert merged.ranks() == (None, None, None, None)
        return
    # Nearest rank: the smallest value with at least ceil(q * n) values at or below it.
    nearest = [ordered[max(-(-num * len(ordered) // den), 1) - 1] for num, den in QUANTILES]
    assert merged.ranks() == (*nearest, ordered[-1])


def test_a_rank_on_a_bucket_boundary_stays_in_that_bucket() -> None:
    # Of 20 values, p95 is the 19th (the last in bucket 3) and p99 the 20th (bucket 4).
    merged = Histogram()
    merged.add(3, [19, 1])
    assert merged.ranks() == (3, 3, 4, 4)


@given(kept=_ARRAYS, taken=_ARRAYS)
def test_a_histogram_less_one_it_holds_ranks_like_what_is_left(
    kept: list[tuple[int, list[int]]], taken: list[tuple[int, list[int]]]
) -> None:
    # Grouped by status, completed's sketch is the one over every status less the others'.
    every, left, gone = Histogram(), Histogram(), Histogram()
    for lo, counts in kept:
        every.add(lo, counts)
        left.add(lo, counts)
    for lo, counts in taken:
        every.add(lo, counts)
        gone.add(lo, counts)

    every.subtract(gone)

    assert every.ranks() == left.ranks()
    assert {every.lo + k: n for k, n in enumerate(every.counts) if n} == {
        left.lo + k: n for k, n in enumerate(left.counts) if n
    }
