"""The producer under faults, on a real broker and PostgreSQL: a worker process keeps recording
runs while the broker is down and never waits on it, and a worker SIGKILLed with events still
spooled loses none of them; afterwards every run is in the history with its status.

These tests stop and start a broker: one of this module's own, so that the shared one never
goes away under other tests. It listens below the kernel's ephemeral port range
(devservices.processes.quiet_port says why). The broker's jars are the local services' (linked,
not resolved again).
"""

from __future__ import annotations

import asyncio
import signal
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from agent_history.devservices import kafka
from agent_history.devservices.processes import quiet_port
from agent_history.devservices.settings import ServicesSettings
from agent_history.producer import ProducerSettings
from agent_history.read_model.tables import agent_executions
from tests.producer_workers import Worker
from tests.support import eventually

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("running_projector")]

OUTAGE_S = 30.0
FULL_WAIT_S = ProducerSettings().spool_full_wait_ms / 1000
# A run waits for the spool only when it is full, up to FULL_WAIT_S per event; the rest is
# the scheduler of a shared 2-core machine, which at a load average of 6 to 11 held a run for
# 269 ms. A run that waited for the broker would wait for the whole outage (30 s) or for
# aiokafka's request timeout (40 s): far beyond this bound either way.
BOUND_S = 2 * FULL_WAIT_S + 0.5


@pytest.fixture(scope="module")
def own_kafka(
    local_services: ServicesSettings, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ServicesSettings]:
    libs = kafka.install(local_services)
    own = local_services.model_copy(
        update={
            "state_dir": tmp_path_factory.mktemp("own-kafka"),
            "kafka_port": quiet_port(),
            "kafka_controller_port": quiet_port(),
        }
    )
    linked = kafka.home(own) / "libs" / own.kafka_version
    linked.parent.mkdir(parents=True)
    linked.symlink_to(libs, target_is_directory=True)
    kafka.start(own)
    try:
        yield own
    finally:
        kafka.stop(own)


@pytest.fixture(scope="module")
def kafka_bootstrap(own_kafka: ServicesSettings) -> str:
    """The topic, the projector and the workers of this module use its own broker."""
    return kafka.bootstrap_servers(own_kafka)


async def _history(engine: AsyncEngine, ids: list[uuid.UUID]) -> dict[uuid.UUID, str]:
    query = select(agent_executions.c.id, agent_executions.c.status)
    async with engine.connect() as conn:
        rows = await conn.execute(query.where(agent_executions.c.id.in_(ids)))
        return {row.id: row.status for row in rows}


async def assert_in_history(engine: AsyncEngine, runs: list[dict[str, Any]]) -> None:
    """Every run has its row, with the status it ended with."""
    wanted = {uuid.UUID(r["id"]): r["status"] for r in runs}
    ids = list(wanted)
    seen = await eventually(
        lambda: _history(engine, ids),
        lambda rows: rows == wanted,
        what=f"{len(wanted)} runs in the history with their statuses",
        within=120.0,
    )
    assert seen == wanted


async def test_runs_recorded_while_the_broker_is_down_never_wait_and_all_arrive(
    producer_settings: ProducerSettings,
    own_kafka: ServicesSettings,
    db_engine: AsyncEngine,
    tmp_path: Path,
) -> None:
    seconds = OUTAGE_S + 10
    report = tmp_path / "worker.jsonl"
    worker = await Worker.start(producer_settings, report, "--seconds", str(seconds))
    await asyncio.sleep(3)
    down_at = time.monotonic()
    await asyncio.to_thread(kafka.stop, own_kafka)
    await asyncio.sleep(max(0.0, OUTAGE_S - (time.monotonic() - down_at)))
    await asyncio.to_thread(kafka.start, own_kafka)
    assert await worker.wait(within=seconds + 120) == 0, worker.report.with_suffix(".log")

    runs = worker.runs()
    raised = [line["raised"] for line in worker.lines() if "raised" in line]
    assert raised == [], "recording raised into runs"
    added = sorted(r["added_s"] for r in runs)
    p50, worst = added[len(added) // 2] * 1e3, added[-1] * 1e3
    summary = f"{len(runs)} runs; recording added p50 {p50:.2f} ms, max {worst:.1f} ms a run"
    print(summary)
    assert added[-1] <= BOUND_S, summary
    assert len(runs) > 200, summary
    waited = max(r["spooled"] for r in runs)
    assert waited > 100, f"the outage should have kept events in the spool; at most {waited}"
    end = worker.flushed()
    assert end["flushed"], end
    assert (end["stats"]["events"], end["stats"]["lost"]) == (0, 0), end
    await assert_in_history(db_engine, runs)


async def test_a_worker_killed_with_events_spooled_loses_none_of_them(
    producer_settings: ProducerSettings, db_engine: AsyncEngine, tmp_path: Path
) -> None:
    # Down as far as the first worker can tell: nothing listens where it sends.
    unreachable = producer_settings.model_copy(
        update={"kafka_bootstrap_servers": f"127.0.0.1:{quiet_port()}"}
    )
    pace = ("--seconds", "60", "--pace", "0.005")
    first = await Worker.start(unreachable, tmp_path / "first.jsonl", *pace)
    await eventually(first.count_runs, lambda n: n >= 300, what="300 runs of the first worker")
    assert await first.kill() == -signal.SIGKILL
    spooled = first.runs()

    second = await Worker.start(producer_settings, tmp_path / "second.jsonl", "--seconds", "1")
    assert await second.wait(within=180) == 0, second.report.with_suffix(".log")

    assert second.flushed()["flushed"], second.flushed()
    await assert_in_history(db_engine, spooled + second.runs())
    folder = Path(producer_settings.spool_dir or "") / producer_settings.topic
    assert list(folder.iterdir()) == [], "the dead worker's log is deleted once shipped"
