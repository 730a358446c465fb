"""Exactly-once effect under faults: the projector process SIGKILLed at random moments and
restarted, the broker restarted once and PostgreSQL restarted once, all while a stream of
duplicated, shuffled events is in flight; afterwards the table is exactly the fold of the log.

Restarting a service needs the local processes (`agent-history services`): this module runs
on them whatever the other tests run on (containers, servers named in the environment), with
a database and topics of its own there. bench/soak.py runs the same scenario
(tests/faults_support.py) at a bigger size.
"""

from __future__ import annotations

import random
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from agent_history.api.settings import ApiSettings
from agent_history.devservices import kafka, postgres
from agent_history.devservices.settings import ServicesSettings
from agent_history.projector.settings import ProjectorSettings
from agent_history.read_model.db import make_engine
from tests.conftest import fresh_database
from tests.faults_support import generate_stream, run_scenario, schedule

pytestmark = pytest.mark.integration

SEED = 10  # faults: kill, broker restart, kill, database restart, kill
EXECUTIONS = 300
KILLS = 3


# The session's kafka_bootstrap, database_url and db_engine, overridden with the local services'
# (the fixtures built on them, topic and projector_settings, then use these).
@pytest.fixture(scope="module")
def kafka_bootstrap(local_services: ServicesSettings) -> str:
    return kafka.bootstrap_servers(local_services)


@pytest.fixture(scope="module")
def database_url(local_services: ServicesSettings) -> Iterator[str]:
    with fresh_database(postgres.database_url(local_services)) as url:
        yield url


@pytest.fixture(scope="module")
async def db_engine(database_url: str) -> AsyncIterator[AsyncEngine]:
    engine = make_engine(ApiSettings(database_url=database_url))
    yield engine
    await engine.dispose()


async def test_table_equals_the_fold_after_kills_and_restarts(
    projector_settings: ProjectorSettings,
    db_engine: AsyncEngine,
    local_services: ServicesSettings,
    tmp_path: Path,
) -> None:
    rng = random.Random(SEED)
    stream = generate_stream(rng, EXECUTIONS)
    # Small batches, so that a kill lands between (or inside) many transactions.
    settings = projector_settings.model_copy(
        update={"batch_max_records": 20, "retry_max_seconds": 1.0}
    )
    faults = schedule(rng, KILLS, restart_kafka=True, restart_postgres=True)
    log = tmp_path / "projector.log"

    outcome = await run_scenario(settings, local_services, db_engine, stream, faults, rng, log)

    report = f"seed {SEED}, faults {faults}: {outcome.summary()}; projector log: {log}"
    print(report)  # shown with -s or -rP: what the faults hit
    assert not outcome.mismatches, "\n".join([report, *outcome.mismatches[:30]])
    assert outcome.rows_compared == EXECUTIONS
    assert (outcome.dead_lettered, outcome.dlq_records) == (0, 0), report
    assert (outcome.kills, outcome.kafka_restarts, outcome.postgres_restarts) == (KILLS, 1, 1)
    assert outcome.kills_behind >= 1, f"no kill hit while records were pending: {report}"
