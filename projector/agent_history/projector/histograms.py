"""A Prometheus histogram of ages filled a batch at a time: one sort and one bisection per
bucket, instead of a bucket search per observation (prometheus_client's Histogram)."""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Iterator, Sequence
from datetime import datetime, timedelta

from prometheus_client.core import HistogramMetricFamily, Metric
from prometheus_client.registry import Collector


class AgeHistogram(Collector):
    """Ages in seconds (now minus a time), observed as whole lists; read by ``collect``.

    Not thread-safe: observe and collect on one thread (the projector's event loop).
    """

    def __init__(self, name: str, documentation: str, buckets: Sequence[float]) -> None:
        self._name, self._documentation = name, documentation
        self._bounds = [timedelta(seconds=b) for b in buckets]
        self._les = [str(float(b)) for b in buckets]
        self._cumulative = [0] * len(buckets)  # observations at most each bound
        self._count = 0
        self._sum = 0.0

    def observe_times(self, times: list[datetime], now: datetime) -> None:
        """Observe ``now - t`` for each ``t`` of ``times`` (sorted in place)."""
        if not times:
            return
        # By timestamp: one UTC offset per time, not two per comparison (the times carry a
        # tzinfo object each). Floats keep microseconds apart for any date of the contract.
        times.sort(key=datetime.timestamp)
        n = len(times)
        for i, bound in enumerate(self._bounds):
            # now - t <= bound exactly when t >= now - bound
            self._cumulative[i] += n - bisect_left(times, now - bound)
        self._count += n
        self._sum += sum(map(now.__sub__, times), timedelta()).total_seconds()

    def collect(self) -> Iterator[Metric]:
        buckets = [*zip(self._les, self._cumulative, strict=True), ("+Inf", self._count)]
        yield HistogramMetricFamily(
            self._name, self._documentation, buckets=buckets, sum_value=self._sum
        )

    def describe(self) -> Iterator[Metric]:
        return self.collect()
