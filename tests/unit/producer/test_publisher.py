"""The Publisher on a real spool folder and an in-memory broker: recording never waits for the
broker, everything recorded is shipped as the contract encodes it, nothing is lost to a
failing broker, a close or a cancellation."""

from __future__ import annotations

import asyncio
import threading
import time
from pathlib import Path
from uuid import uuid4

import pytest
from aiokafka.errors import KafkaTimeoutError

from agent_history.contract.events import (
    CancelledData,
    CompletedData,
    FailedData,
    RunRequestData,
    parse_event,
    record_key,
)
from agent_history.producer import ProducerSettings, Publisher, shipper, track_execution
from tests.support import eventually
from tests.unit.producer.fake_broker import FakeBroker

AGENT, USER = uuid4(), uuid4()


def settings(tmp_path: Path, **overrides: object) -> ProducerSettings:
    return ProducerSettings(spool_dir=tmp_path, topic="runs", **overrides)  # type: ignore[arg-type]


def request(execution_id: object = None) -> RunRequestData:
    eid = execution_id or uuid4()
    return RunRequestData(execution_id=eid, agent_id=AGENT, user_id=USER, input_data={"q": "ü"})


async def test_events_reach_the_broker_exactly_as_the_contract_encodes_them(
    tmp_path: Path,
) -> None:
    broker = FakeBroker()
    eid = uuid4()
    ids = {"execution_id": eid, "agent_id": AGENT, "user_id": USER}
    async with Publisher(settings(tmp_path), make_producer=broker.producer) as p:
        events = [
            await p.publish_queued(request(eid)),
            await p.publish_started(request(eid)),
            await p.publish_completed(CompletedData(**ids, output_data={"a": [1, 2.5, None]})),
            p.record_failed(FailedData(**ids, error_message="boom")),
            p.record_cancelled(CancelledData(**ids, reason="stop")),
        ]
        assert await p.flush(5)

    assert [parse_event(r.value) for r in broker.records] == events
    assert {r.key for r in broker.records} == {record_key(eid)}
    assert {r.topic for r in broker.records} == {"runs"}
    assert all(
        r.headers == [("content-type", b"application/cloudevents+json")] for r in broker.records
    )


async def test_recording_does_not_wait_for_the_broker(tmp_path: Path) -> None:
    broker = FakeBroker(acknowledging=False)
    async with Publisher(
        settings(tmp_path, close_timeout_ms=0), make_producer=broker.producer
    ) as p:
        await p.publish_started(request())
        await p.publish_started(request())
        assert p.spool_stats().events == 2
        assert not await p.flush(0.1), "nothing acknowledged yet"

        await eventually(lambda: _as_awaitable(len(broker.pending)), lambda n: n == 2, what="sends")
        broker.acknowledge()
        assert await p.flush(5)
        stats = p.spool_stats()
        assert (stats.events, stats.sent, stats.lost) == (0, 2, 0)


async def test_connect_succeeds_without_a_broker_and_ships_once_there_is_one(
    tmp_path: Path,
) -> None:
    broker = FakeBroker(up=False)
    async with Publisher(settings(tmp_path), make_producer=broker.producer) as p:
        started = await p.publish_started(request())
        await eventually(lambda: _as_awaitable(broker.starts), lambda n: n >= 2, what="retries")
        assert p.spool_stats().errors >= 2

        broker.up = True
        assert await p.flush(10)

    assert [parse_event(r.value) for r in broker.records] == [started]


async def test_what_a_failing_broker_did_not_take_is_sent_again_under_the_same_ids(
    tmp_path: Path,
) -> None:
    broker = FakeBroker(acknowledging=False)
    async with Publisher(settings(tmp_path), make_producer=broker.producer) as p:
        sent = [await p.publish_started(request()) for _ in range(3)]
        await eventually(lambda: _as_awaitable(len(broker.pending)), lambda n: n == 3, what="sends")
        broker.fail(KafkaTimeoutError())
        broker.acknowledging = True
        assert await p.flush(10)

    assert [parse_event(r.value) for r in broker.records] == sent
    assert broker.starts == 2


async def test_a_broker_that_stops_answering_is_dropped_and_tried_again(tmp_path: Path) -> None:
    broker = FakeBroker(acknowledging=False)
    async with Publisher(settings(tmp_path), make_producer=broker.producer) as p:
        started = await p.publish_started(request())
        await eventually(lambda: _as_awaitable(len(broker.pending)), lambda n: n == 1, what="send")
        broker.up = False  # what was sent is never acknowledged
        await eventually(lambda: _as_awaitable(broker.starts), lambda n: n >= 3, what="restarts")

        broker.up = broker.acknowledging = True
        assert await p.flush(10)

    assert [parse_event(r.value) for r in broker.records] == [started]


async def test_a_producer_stuck_while_its_broker_answers_is_dropped_and_tried_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(shipper, "START_TIMEOUT_S", 0.2)
    monkeypatch.setattr(shipper, "ACK_TIMEOUT_S", 0.5)
    broker = FakeBroker(acknowledging=False, stuck_starts=1)
    async with Publisher(settings(tmp_path), make_producer=broker.producer) as p:
        started = await p.publish_started(request())
        # The first start never returns; the second producer's send is never acknowledged,
        # though the broker answers; the third one's is.
        await eventually(lambda: _as_awaitable(len(broker.pending)), lambda n: n == 1, what="send")
        await eventually(lambda: _as_awaitable(broker.starts), lambda n: n >= 3, what="restarts")
        broker.acknowledging = True
        assert await p.flush(10)

    assert [parse_event(r.value) for r in broker.records] == [started]
    assert p.spool_stats().errors >= 2


async def test_a_cancellation_inside_the_client_as_it_stops_does_not_end_shipping(
    tmp_path: Path,
) -> None:
    broker = FakeBroker(acknowledging=False, cancelled_stops=True)
    async with Publisher(settings(tmp_path), make_producer=broker.producer) as p:
        first = await p.publish_started(request())
        await eventually(lambda: _as_awaitable(len(broker.pending)), lambda n: n == 1, what="send")
        broker.fail(KafkaTimeoutError())  # the producer is dropped: its stop() is cancelled
        broker.acknowledging = True
        await eventually(lambda: _as_awaitable(broker.starts), lambda n: n == 2, what="restart")
        second = await p.publish_started(request())
        assert await p.flush(10)

    assert [parse_event(r.value) for r in broker.records] == [first, second]


@pytest.mark.parametrize("silent", [FakeBroker(acknowledging=False), FakeBroker(hanging=True)])
async def test_close_leaves_what_the_broker_lacks_to_the_next_publisher(
    tmp_path: Path, silent: FakeBroker
) -> None:
    began = time.monotonic()
    async with Publisher(
        settings(tmp_path, close_timeout_ms=100), make_producer=silent.producer
    ) as p:
        sent = [await p.publish_started(request()) for _ in range(3)]
    assert time.monotonic() - began < 2.0, "close waits close_timeout_ms, not for the broker"
    assert silent.records == []

    broker = FakeBroker()
    async with Publisher(settings(tmp_path), make_producer=broker.producer) as p:
        await eventually(
            lambda: _as_awaitable(len(broker.records)), lambda n: n == 3, what="adoption"
        )

    assert [parse_event(r.value) for r in broker.records] == sent
    assert list(tmp_path.joinpath("runs").iterdir()) == [], "shipped logs are deleted"


def test_a_publisher_for_synchronous_code_ships_from_a_thread_of_its_own(tmp_path: Path) -> None:
    broker = FakeBroker()

    with Publisher(settings(tmp_path), make_producer=broker.producer) as p:

        @track_execution(AGENT, USER, publisher=p)
        def square(n: int) -> int:
            return n * n

        threads = [threading.Thread(target=square, args=(n,)) for n in range(4)]
        for thread in threads:
            thread.start()
        with track_execution(AGENT, USER, {"main": True}, publisher=p) as run:
            run.output = square(10)
        for thread in threads:
            thread.join()

    kinds = [parse_event(r.value).type for r in broker.records]
    assert sorted(kinds) == ["ExecutionCompleted"] * 6 + ["ExecutionStarted"] * 6


async def test_a_full_spool_loses_the_event_counted_and_never_raises(tmp_path: Path) -> None:
    broker = FakeBroker(acknowledging=False)
    tight = settings(tmp_path, spool_max_bytes=1000, spool_full_wait_ms=0, close_timeout_ms=0)
    async with Publisher(tight, make_producer=broker.producer) as p:
        await p.publish_started(request())
        await p.publish_started(request())

        assert (p.spool_stats().events, p.spool_stats().lost) == (1, 1)


async def test_cancelled_while_waiting_for_room_the_event_is_still_recorded(
    tmp_path: Path,
) -> None:
    broker = FakeBroker(acknowledging=False)
    tight = settings(tmp_path, spool_max_bytes=1000, spool_full_wait_ms=5000)
    async with Publisher(tight, make_producer=broker.producer) as p:
        first = await p.publish_started(request())
        waiting = asyncio.create_task(p.publish_started(request()))
        await asyncio.sleep(0.05)
        waiting.cancel()
        await asyncio.sleep(0.01)
        waiting.cancel()
        with pytest.raises(asyncio.CancelledError):
            await waiting

        broker.acknowledging = True
        broker.acknowledge()
        await eventually(lambda: _as_awaitable(len(broker.records)), lambda n: n == 2, what="both")

    assert parse_event(broker.records[0].value) == first
    assert p.spool_stats().lost == 0


async def _as_awaitable(value: int) -> int:
    return value
