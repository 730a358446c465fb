"""The live projector's metrics (Prometheus) and readiness, observed once per batch.

consumer.Projector reports each batch here (BatchObserver in ports.py); nothing is counted
per event: a batch's counts are added at once and its event ages go into an AgeHistogram in
one pass. The consumer lag is read when scraped, from the consumer's high watermarks (what
its fetches last saw) and the checkpoints this process wrote or read.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from datetime import UTC, datetime

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from agent_history.projector.core.decode import Poison
from agent_history.projector.core.fold import Execution
from agent_history.projector.core.poison import POISON_KINDS, poison_kind
from agent_history.projector.histograms import AgeHistogram
from agent_history.projector.ports import Consumer

AGE_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900, 3600, 21600, 86400)
BATCH_BUCKETS = (1, 10, 50, 100, 250, 500, 1000, 2500, 5000, 10000, 20000)
APPLY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)


class ProjectorMetrics:
    """What the live projector did, and whether it is ready (``unready`` says why not)."""

    def __init__(
        self,
        registry: CollectorRegistry,
        topic: str,
        stall_seconds: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.registry = registry
        self.started: asyncio.Event | None = None  # set once the subscriber runs
        self._topic, self._stall, self._clock = topic, stall_seconds, clock
        self._consumer: Consumer | None = None
        self._checkpoints: dict[int, int] = {}
        self._progress_at = clock()
        self._failing_since: float | None = None
        self._behind_since: float | None = None
        self._projected = Counter(
            "agent_history_projector_events_projected",
            "Events applied to the read model (duplicates included, poison excluded).",
            registry=registry,
        )
        dead = Counter(
            "agent_history_projector_events_dead_lettered",
            "Records sent to the dead-letter topic, by the kind of their reason.",
            ["reason"],
            registry=registry,
        )
        self._dead = {kind: dead.labels(kind) for kind in POISON_KINDS}
        self._dropped = Counter(
            "agent_history_projector_events_erased",
            "Events of erased users dropped instead of applied.",
            registry=registry,
        )
        self._failures = Counter(
            "agent_history_projector_batch_failures",
            "Batches whose transaction failed (each is retried from its checkpoint).",
            registry=registry,
        )
        self._batch = Histogram(
            "agent_history_projector_batch_records",
            "Records per batch applied.",
            buckets=BATCH_BUCKETS,
            registry=registry,
        )
        self._apply = Histogram(
            "agent_history_projector_batch_apply_duration_seconds",
            "Time from a batch's first statement to its commit.",
            buckets=APPLY_BUCKETS,
            registry=registry,
        )
        self._last = Gauge(
            "agent_history_projector_last_batch_timestamp_seconds",
            "When the last batch committed (Unix time).",
            registry=registry,
        )
        self._age = AgeHistogram(
            "agent_history_projector_event_age_seconds",
            "Age of each execution's newest event in a batch when the batch commits: "
            "how fresh the history is.",
            AGE_BUCKETS,
        )
        registry.register(self._age)
        registry.register(_Lag(self))

    # ---- what consumer.Projector reports (ports.BatchObserver) ----------------------------

    def assigned(self, consumer: Consumer, stored: Mapping[int, int]) -> None:
        self._consumer = consumer
        self._checkpoints.update(stored)
        self._progress_at = self._clock()

    def applied(
        self,
        consumer: Consumer,
        records: int,
        poison: Sequence[Poison],
        dropped: int,
        rows: Iterable[Execution],
        seconds: float,
        next_offsets: Mapping[int, int],
    ) -> None:
        now = datetime.now(UTC)
        self._consumer = consumer
        self._checkpoints.update(next_offsets)
        self._progress_at, self._failing_since = self._clock(), None
        self._batch.observe(records)
        self._apply.observe(seconds)
        self._last.set(now.timestamp())
        self._projected.inc(records - len(poison) - dropped)
        if dropped:
            self._dropped.inc(dropped)
        for p in poison:
            self._dead[poison_kind(p.reason)].inc()
        self._age.observe_times([r.last_seen_at for r in rows if r.last_seen_at], now)

    def failed(self) -> None:
        self._failures.inc()
        if self._failing_since is None:
            self._failing_since = self._clock()

    # ---- read when scraped or probed ------------------------------------------------------

    def lag(self) -> dict[int, int]:
        """Records behind, per assigned partition whose end the consumer has seen."""
        consumer, lags = self._consumer, {}
        if consumer is None:
            return {}
        for tp in consumer.assignment():
            end = consumer.highwater(tp)
            if tp.topic == self._topic and end is not None:
                lags[tp.partition] = max(0, end - self._checkpoints.get(tp.partition, 0))
        return lags

    def unready(self) -> list[str]:
        """Why this projector is not ready; empty when it is consuming and not stuck."""
        now, reasons = self._clock(), []
        if self.started is None or not self.started.is_set():
            reasons.append("not consuming yet")
        if self._failing_since is not None and now - self._failing_since > self._stall:
            reasons.append(f"batches have failed for {now - self._failing_since:.0f} s")
        behind = sum(self.lag().values())
        if not behind:
            self._behind_since = None
        elif self._behind_since is None:
            self._behind_since = now
        if self._behind_since is not None and (
            now - max(self._behind_since, self._progress_at) > self._stall
        ):
            since = now - self._progress_at
            reasons.append(f"{behind} records behind and no batch applied for {since:.0f} s")
        return reasons


class _Lag(Collector):
    def __init__(self, metrics: ProjectorMetrics) -> None:
        self._metrics = metrics

    def collect(self) -> Iterator[Metric]:
        family = GaugeMetricFamily(
            "agent_history_projector_consumer_lag_records",
            "Records in the topic past the stored checkpoint, per assigned partition.",
            labels=["partition"],
        )
        for partition, lag in sorted(self._metrics.lag().items()):
            family.add_metric([str(partition)], lag)
        yield family

    def describe(self) -> Iterator[Metric]:
        return self.collect()
