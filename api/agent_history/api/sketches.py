"""Duration sketches merged and ranked in Python: dense log-bucket histograms (the layout of
the sketch tables, migrations 0010 and 0016) added up, then the buckets at given ranks.

Adding two arrays is one C-level ``map`` over their overlap, and finding a rank a bisection of
the running sums, so merging a few dozen stored rows costs far less than sending each bucket
through SQL's grouping and window functions (docs/benchmarks-stats.md).
"""

from __future__ import annotations

import operator
from bisect import bisect_left
from collections.abc import Sequence
from itertools import accumulate

# Quantiles as exact fractions, so the nearest rank is ceil(q * total) without float rounding.
QUANTILES = ((1, 2), (19, 20), (99, 100))


class Histogram:
    """Counts per log bucket: ``counts[k]`` runs in bucket ``lo + k``."""

    __slots__ = ("counts", "lo")

    def __init__(self) -> None:
        self.lo = 0
        self.counts: list[int] = []

    def add(self, lo: int, counts: Sequence[int]) -> None:
        if not counts:
            return
        if not self.counts:
            self.lo, self.counts = lo, list(counts)
            return
        if lo < self.lo:
            self.counts[:0] = [0] * (self.lo - lo)
            self.lo = lo
        end = lo - self.lo + len(counts)
        if end > len(self.counts):
            self.counts.extend([0] * (end - len(self.counts)))
        start = lo - self.lo
        self.counts[start:end] = map(operator.add, self.counts[start:end], counts)

    def subtract(self, other: Histogram) -> None:
        """Take away the runs of ``other``, which this one holds all of."""
        self.add(other.lo, [-n for n in other.counts])

    def ranks(self) -> tuple[int | None, ...]:
        """The buckets holding the nearest ranks of QUANTILES, then the highest bucket; None
        each when the histogram is empty."""
        running = list(accumulate(self.counts))
        total = running[-1] if running else 0
        if total <= 0:
            return (None,) * (len(QUANTILES) + 1)
        ranks = [max(-(-num * total // den), 1) for num, den in QUANTILES]
        return tuple(self.lo + bisect_left(running, rank) for rank in [*ranks, total])
