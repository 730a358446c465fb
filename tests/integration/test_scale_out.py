"""Scale-out: two projector processes in one consumer group share the partitions. The second
joins mid-stream (a rebalance while batches are applied); then one of them is SIGKILLed
mid-stream, the other takes its partitions over, and nothing is lost or applied twice."""

from __future__ import annotations

import asyncio
import random
from pathlib import Path
from typing import Any

import pytest
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.coordinator.protocol import ConsumerProtocolMemberAssignment
from sqlalchemy.ext.asyncio import AsyncEngine

from agent_history.contract.events import Event
from agent_history.projector.settings import ProjectorSettings
from tests.faults_support import (
    Outcome,
    ProjectorProcess,
    checkpoints,
    compare,
    generate_stream,
    send,
    split,
    start_producer,
)
from tests.support import caught_up, eventually

pytestmark = pytest.mark.integration

SEED = 6
EXECUTIONS = 400
PARTITIONS = 3  # the test topic's: the projectors get two and one
# aiokafka's default session timeout is 10 s: the survivor gets the partitions after it.
TAKEOVER_WITHIN_S = 40.0

Members = dict[str, set[int]]


async def members(bootstrap: str, group: str) -> tuple[str, Members]:
    """The group's state and each member's partitions, as the group coordinator sees them."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        (response,) = await admin.describe_consumer_groups([group])
    finally:
        await admin.close()
    (described,) = response.groups
    state, group_members = described[2], described[5]
    owned: Members = {}
    for member in group_members:
        member_id, assignment = member[0], member[4]
        decoded = ConsumerProtocolMemberAssignment.decode(assignment) if assignment else None
        owned[member_id] = {tp.partition for tp in decoded.partitions()} if decoded else set()
    return state, owned


async def feed(producer: Any, topic: str, events: list[Event], sent: list[Any]) -> None:
    """Send the events in small chunks over about 16 s, so that the stream is in flight
    through the second projector's arrival and the kill."""
    for chunk in split(events, 80):
        sent += await send(producer, topic, chunk)
        await asyncio.sleep(0.2)  # pacing, not synchronisation


async def test_two_projectors_share_the_partitions_and_survive_a_kill(
    projector_settings: ProjectorSettings, topic: str, db_engine: AsyncEngine, tmp_path: Path
) -> None:
    settings = projector_settings.model_copy(update={"batch_max_records": 20})
    rng = random.Random(SEED)
    stream = generate_stream(rng, EXECUTIONS)
    bootstrap, group = settings.kafka_bootstrap_servers, settings.consumer_group
    first, second = (ProjectorProcess(settings, tmp_path / f"projector-{i}.log") for i in (1, 2))
    producer = await start_producer(bootstrap)
    sent: list[Any] = []
    feeding = asyncio.create_task(feed(producer, topic, stream.events, sent))
    try:
        first.start()
        await eventually(
            lambda: checkpoints(db_engine, settings),
            lambda seen: sum(seen.values()) > 0,
            what="the first projector to apply records",
        )
        # Joins mid-stream: the first one's partitions are revoked while it applies batches.
        second.start()
        await eventually(
            lambda: members(bootstrap, group),
            lambda seen: seen[0] == "Stable" and len(seen[1]) == 2 and all(seen[1].values()),
            what="both projectors to own partitions of the topic",
        )
        applied = sum((await checkpoints(db_engine, settings)).values())
        await eventually(
            lambda: checkpoints(db_engine, settings),
            lambda seen: sum(seen.values()) > applied,
            what="the two projectors to apply records",
        )
        # A random pause, so that the kill lands at a different point of the stream.
        await asyncio.sleep(rng.uniform(0.0, 0.05))
        victim, survivor = rng.sample([first, second], 2)
        await victim.kill()
        assert not feeding.done(), "the stream should still be in flight at the kill"
        await feeding

        await caught_up(db_engine, group, topic, sent)
        _state, owned = await eventually(
            lambda: members(bootstrap, group),
            lambda seen: seen[0] == "Stable" and len(seen[1]) == 1,
            what="the killed projector to leave the group",
            within=TAKEOVER_WITHIN_S,
        )
        assert list(owned.values()) == [set(range(PARTITIONS))], f"the survivor owns {owned}"
    finally:
        feeding.cancel()
        await producer.stop()
        for projector in (first, second):
            await projector.stop()

    outcome = Outcome(events=len(stream.events))
    await compare(db_engine, settings, stream, outcome)
    logs = f"logs: {victim.log} (killed), {survivor.log}"
    assert not outcome.mismatches, "\n".join([outcome.summary(), logs, *outcome.mismatches[:30]])
    assert outcome.rows_compared == EXECUTIONS
    assert (outcome.dead_lettered, outcome.dlq_records) == (0, 0), outcome.summary()
