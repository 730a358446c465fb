"""The spool of a Publisher as Prometheus metrics, for the agent worker's own registry.

Needs ``prometheus-client``, which the producer does not install by itself: install
``agent-history[metrics]``, then ``REGISTRY.register(SpoolCollector(publisher))``. Read when
scraped (``Publisher.spool_stats()``), so recording costs nothing more.
"""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from agent_history.producer.publisher import Publisher


class SpoolCollector(Collector):
    """One publisher's spool: what waits for the broker, and what was sent and lost."""

    def __init__(self, publisher: Publisher) -> None:
        self._stats = publisher.spool_stats

    def collect(self) -> Iterator[Metric]:
        s = self._stats()
        yield GaugeMetricFamily(
            "agent_history_producer_spool_events",
            "Events spooled and not yet acknowledged by the broker.",
            value=s.events,
        )
        yield GaugeMetricFamily(
            "agent_history_producer_spool_bytes",
            "Bytes spooled and not yet acknowledged by the broker.",
            value=s.bytes,
        )
        yield GaugeMetricFamily(
            "agent_history_producer_spool_oldest_event_age_seconds",
            "Age of the oldest event waiting for the broker; 0 when none waits.",
            value=s.oldest_age_s or 0.0,
        )
        yield CounterMetricFamily(
            "agent_history_producer_events_sent",
            "Events the broker acknowledged.",
            value=s.sent,
        )
        yield CounterMetricFamily(
            "agent_history_producer_events_lost",
            "Events never spooled: the spool was full, or the disk failed.",
            value=s.lost,
        )
        yield CounterMetricFamily(
            "agent_history_producer_errors",
            "Failures of the disk or the broker (each logged, or part of a logged outage).",
            value=s.errors,
        )

    def describe(self) -> Iterator[Metric]:
        return self.collect()
