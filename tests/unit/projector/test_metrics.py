"""The projector's metrics and readiness, with a fake clock and consumer."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace
from typing import cast

from aiokafka import TopicPartition
from prometheus_client import CollectorRegistry, Histogram

from agent_history.projector.core.decode import Poison
from agent_history.projector.core.fold import Execution
from agent_history.projector.histograms import AgeHistogram
from agent_history.projector.metrics import AGE_BUCKETS, ProjectorMetrics
from tests.unit.projector.core.test_batch import FakeRecord
from tests.unit.projector.test_consumer import TOPIC, FakeConsumer

NOW = datetime(2025, 6, 1, 8, tzinfo=UTC)


class Ends(FakeConsumer):
    def __init__(self, ends: dict[int, int]) -> None:
        super().__init__(list(ends))
        self.ends = ends

    def highwater(self, tp: TopicPartition) -> int | None:
        return self.ends.get(tp.partition)


def _samples(registry: CollectorRegistry) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in registry.collect()
        for s in family.samples
        if not s.name.endswith("_created")
    }


def test_the_age_histogram_counts_as_prometheus_histogram_does() -> None:
    ages = [-1.0, 0.0, 0.05, 0.07, 1.0, 3.0, 59.9, 60.0, 4000.0, 10**6]
    ours, reference = CollectorRegistry(), CollectorRegistry()
    histogram = AgeHistogram("age_seconds", "doc", AGE_BUCKETS)
    ours.register(histogram)
    theirs = Histogram("age_seconds", "doc", buckets=AGE_BUCKETS, registry=reference)

    histogram.observe_times([NOW - timedelta(seconds=a) for a in ages[:4]], NOW)
    histogram.observe_times([NOW - timedelta(seconds=a) for a in ages[4:]], NOW)
    for a in ages:
        theirs.observe(a)

    assert _samples(ours) == _samples(reference)


def _row(seen: datetime | None) -> Execution:
    return cast(Execution, SimpleNamespace(last_seen_at=seen))


def test_a_batch_is_counted_once_with_its_dead_letters_by_kind() -> None:
    metrics = ProjectorMetrics(CollectorRegistry(), TOPIC, stall_seconds=60)
    consumer = Ends({0: 10, 1: 7})
    poison = [Poison(FakeRecord(None), "empty record value (tombstone)")]
    rows = [_row(datetime.now(UTC)), _row(None)]

    metrics.applied(consumer, 5, poison, 1, rows, 0.02, {0: 10, 1: 4})

    seen = _samples(metrics.registry)
    assert seen[("agent_history_projector_events_projected_total", ())] == 3
    assert seen[("agent_history_projector_events_erased_total", ())] == 1
    dead = "agent_history_projector_events_dead_lettered_total"
    assert seen[(dead, (("reason", "tombstone"),))] == 1
    assert seen[(dead, (("reason", "invalid_event"),))] == 0
    assert seen[("agent_history_projector_batch_records_count", ())] == 1
    assert seen[("agent_history_projector_event_age_seconds_count", ())] == 1
    lag = "agent_history_projector_consumer_lag_records"
    assert seen[(lag, (("partition", "0"),))] == 0
    assert seen[(lag, (("partition", "1"),))] == 3


def test_ready_once_consuming_until_stuck_behind_or_failing() -> None:
    clock = [0.0]
    metrics = ProjectorMetrics(CollectorRegistry(), TOPIC, 60, clock=lambda: clock[0])
    assert metrics.unready() == ["not consuming yet"]
    metrics.started = asyncio.Event()
    metrics.started.set()
    consumer = Ends({0: 10})
    metrics.assigned(consumer, {0: 4})
    assert metrics.unready() == [], "behind, but just assigned"
    clock[0] = 61.0
    assert metrics.unready() == ["6 records behind and no batch applied for 61 s"]
    metrics.applied(consumer, 6, [], 0, [], 0.01, {0: 10})
    metrics.failed()
    clock[0] = 100.0
    assert metrics.unready() == [], "failing for less than the stall"
    clock[0] = 122.0
    assert metrics.unready() == ["batches have failed for 61 s"]
    metrics.applied(consumer, 0, [], 0, [], 0.01, {0: 10})
    clock[0] = 1000.0
    assert metrics.unready() == [], "idle and caught up"
