"""Every metric the Grafana dashboard (docs/grafana-dashboard.json) queries is one the
processes expose, every exposed metric is in the README, and names follow Prometheus'
conventions."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry

from agent_history.api.metrics import ApiMetrics
from agent_history.producer import ProducerSettings, Publisher
from agent_history.producer.metrics import SpoolCollector
from agent_history.projector.job_metrics import ReplayMetrics, WatchdogMetrics, watchdog_registry
from agent_history.projector.metrics import ProjectorMetrics
from agent_history.projector.settings import WatchdogSettings
from agent_history.projector.watchdog import Watchdog
from agent_history.read_model.db import make_engine

ROOT = Path(__file__).resolve().parents[2]
DASHBOARD = ROOT / "docs" / "grafana-dashboard.json"
_SUFFIXES = {"counter": ("_total",), "histogram": ("_bucket", "_sum", "_count"), "gauge": ("",)}
_NAME = re.compile(r"\bagent_history_[a-z0-9_]+")


@pytest.fixture(scope="module")
def registries(tmp_path_factory: pytest.TempPathFactory) -> list[CollectorRegistry]:
    """The registry of each process, built as the processes build them."""
    settings = WatchdogSettings()
    # Built, never run: its engine connects to nothing and it asks for no verdict log.
    watchdog = Watchdog(settings, make_engine(settings), lambda: None)  # type: ignore[arg-type,return-value]
    producer = CollectorRegistry()
    spool = tmp_path_factory.mktemp("spool")
    producer.register(SpoolCollector(Publisher(ProducerSettings(spool_dir=spool))))
    return [
        ProjectorMetrics(CollectorRegistry(), "t", 60).registry,
        watchdog_registry(WatchdogMetrics(watchdog, 60)),
        ReplayMetrics(CollectorRegistry()).registry,
        ApiMetrics().registry,
        producer,
    ]


def _families(registries: list[CollectorRegistry]) -> dict[str, str]:
    return {f.name: f.type for r in registries for f in r.collect()}


def _series(registries: list[CollectorRegistry]) -> set[str]:
    return {n + s for n, kind in _families(registries).items() for s in _SUFFIXES[kind]}


def _expressions() -> list[str]:
    panels = json.loads(DASHBOARD.read_text())["panels"]
    return [target["expr"] for panel in panels for target in panel["targets"]]


def test_every_metric_the_dashboard_queries_is_exposed(
    registries: list[CollectorRegistry],
) -> None:
    exposed = _series(registries)
    for expr in _expressions():
        used = set(_NAME.findall(expr))
        assert used, f"a dashboard query uses none of our metrics: {expr}"
        assert used <= exposed, f"{sorted(used - exposed)} (in {expr}) is exposed by no process"


def test_the_dashboard_shows_every_metric(registries: list[CollectorRegistry]) -> None:
    used = {name for expr in _expressions() for name in _NAME.findall(expr)}
    shown = {re.sub(r"_(total|bucket|sum|count)$", "", n) for n in used}
    assert set(_families(registries)) - shown == set()


def test_the_readme_lists_every_metric(registries: list[CollectorRegistry]) -> None:
    readme = (ROOT / "README.md").read_text()
    names = [n for n in _series(registries) if not n.endswith(("_bucket", "_sum", "_count"))]
    assert sorted(n for n in names if f"`{n}`" not in readme) == []


def test_names_carry_their_unit_and_labels_stay_few(registries: list[CollectorRegistry]) -> None:
    for name, kind in _families(registries).items():
        assert name.startswith("agent_history_"), name
        if kind == "histogram":
            assert name.endswith(("_seconds", "_records")), name
    for registry in registries:
        for family in registry.collect():
            labels = {k for s in family.samples for k in s.labels} - {"le"}
            assert labels <= {"reason", "partition", "method", "route", "status", "state"}
