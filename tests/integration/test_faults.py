"""Exactly-once effect under faults: the projector process SIGKILLed at random moments and
restarted, the broker restarted once and PostgreSQL restarted once, all while a stream of
duplicated, shuffled events is in flight; afterwards the table is exactly the fold of the log.

bench/soak.py runs the same scenario (tests/faults_support.py) at a bigger size.
"""

from __future__ import annotations

import random
from pathlib import Path

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from agent_history.projector.settings import ProjectorSettings
from tests.faults_support import generate_stream, run_scenario, schedule

pytestmark = pytest.mark.integration

SEED = 10  # faults: kill, broker restart, kill, database restart, kill
EXECUTIONS = 300
KILLS = 3


async def test_table_equals_the_fold_after_kills_and_restarts(
    projector_settings: ProjectorSettings, db_engine: AsyncEngine, tmp_path: Path
) -> None:
    rng = random.Random(SEED)
    stream = generate_stream(rng, EXECUTIONS)
    # Small batches, so that a kill lands between (or inside) many transactions.
    settings = projector_settings.model_copy(
        update={"batch_max_records": 20, "retry_max_seconds": 1.0}
    )
    faults = schedule(rng, KILLS, restart_kafka=True, restart_postgres=True)
    log = tmp_path / "projector.log"

    outcome = await run_scenario(settings, db_engine, stream, faults, rng, log)

    report = f"seed {SEED}, faults {faults}: {outcome.summary()}; projector log: {log}"
    print(report)  # shown with -s or -rP: what the faults hit
    assert not outcome.mismatches, "\n".join([report, *outcome.mismatches[:30]])
    assert outcome.rows_compared == EXECUTIONS
    assert (outcome.dead_lettered, outcome.dlq_records) == (0, 0), report
    assert (outcome.kills, outcome.kafka_restarts, outcome.postgres_restarts) == (KILLS, 1, 1)
    assert outcome.kills_behind >= 1, f"no kill hit while records were pending: {report}"
