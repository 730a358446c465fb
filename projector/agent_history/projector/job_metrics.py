"""Metrics of the watchdog and of replay, and the watchdog's readiness.

The watchdog counts what it does itself (watchdog.Watchdog's counters); a collector reads
them when scraped. Replay reports its progress through its progress callback.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import get_args

from prometheus_client import CollectorRegistry, Counter, Gauge
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from agent_history.contract.events import TimeoutReason
from agent_history.projector.watchdog import Watchdog

# The reasons this version gives: each shown from the start, at 0.
_REASONS: tuple[str, ...] = get_args(TimeoutReason)


class WatchdogMetrics(Collector):
    """The watchdog's counters as metrics, and whether it is stuck (``unready``)."""

    def __init__(
        self,
        watchdog: Watchdog,
        stall_seconds: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._watchdog, self._stall, self._clock = watchdog, stall_seconds, clock
        self._rounds_seen = -1
        self._progress_at = clock()

    def collect(self) -> Iterator[Metric]:
        w = self._watchdog
        verdicts = CounterMetricFamily(
            "agent_history_watchdog_verdicts",
            "Verdicts published (runs timed out), by reason.",
            labels=["reason"],
        )
        for reason in sorted({*_REASONS, *w.verdicts}):
            verdicts.add_metric([reason], w.verdicts[reason])
        yield verdicts
        yield CounterMetricFamily(
            "agent_history_watchdog_rounds",
            "Rounds judged while holding the lock.",
            value=w.rounds,
        )
        yield CounterMetricFamily(
            "agent_history_watchdog_held_back_rounds",
            "Rounds skipped because the projector had not applied the topic yet.",
            value=w.held_back,
        )
        yield GaugeMetricFamily(
            "agent_history_watchdog_leading",
            "1 while this watchdog holds the lock and judges, 0 on standby.",
            value=int(w.leading),
        )

    def describe(self) -> Iterator[Metric]:
        return self.collect()

    def unready(self) -> list[str]:
        """Why this watchdog is not ready: it leads but has finished no round for too long.
        A standby watchdog is ready: it takes over when the leader goes."""
        w, now = self._watchdog, self._clock()
        rounds = w.rounds + w.held_back
        if rounds != self._rounds_seen or not w.leading:
            self._rounds_seen, self._progress_at = rounds, now
            return []
        if now - self._progress_at > self._stall:
            return [f"leading, but no round finished for {now - self._progress_at:.0f} s"]
        return []


def watchdog_registry(metrics: WatchdogMetrics) -> CollectorRegistry:
    registry = CollectorRegistry()
    registry.register(metrics)
    return registry


class ReplayMetrics:
    """Replay's progress, fed by its progress callback (``progress(done, total)``)."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.registry = registry
        self._read = Counter(
            "agent_history_replay_events_read",
            "Events replay has read and applied into its shadow tables.",
            registry=registry,
        )
        self._total = Gauge(
            "agent_history_replay_events",
            "Events replay reads in all (grows if the topic does meanwhile).",
            registry=registry,
        )
        self._ratio = Gauge(
            "agent_history_replay_progress_ratio",
            "Share of the events read, from 0 to 1.",
            registry=registry,
        )
        self._done = 0

    def progress(self, done: int, total: int) -> None:
        self._read.inc(done - self._done)
        self._done = done
        self._total.set(total)
        self._ratio.set(done / total if total else 1.0)
