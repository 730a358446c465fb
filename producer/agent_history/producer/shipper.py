"""Ships the spool to Kafka in the background: the idempotent producer (acks from all in-sync
replicas), one record per event, keyed by execution id. An event leaves the spool only once
the broker acknowledged it; after any failure the producer starts over from the oldest event
not acknowledged, so an event may be sent twice (same id: the fold ignores the second)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
from collections import deque
from collections.abc import Callable
from typing import Any

from agent_history.producer.framing import Frame
from agent_history.producer.kafka import CONTENT_MODES, UNSENDABLE, Producer
from agent_history.producer.outage import Outage
from agent_history.producer.segment_files import Position
from agent_history.producer.segments import SegmentLog
from agent_history.producer.settings import ProducerSettings
from agent_history.producer.spool import Spool

READ_BYTES = 256 << 10
MAX_IN_FLIGHT = 20_000  # records sent and not yet acknowledged
# An acknowledgement this late makes the shipper ask whether the broker answers at all: while
# it does not, aiokafka retries its metadata in a tight loop (a core and a log line each time)
# until the request timeout, so the producer is dropped and started again with backoff.
STALL_S = 0.25
# aiokafka can get stuck for good while a broker answers: its start() waits for a producer id
# in an unbounded loop, and its sender can stop taking acknowledgements. Past these bounds the
# producer is dropped and started again.
START_TIMEOUT_S = 20.0
ACK_TIMEOUT_S = 30.0
ADOPT_EVERY_S = 10.0  # also finds the logs of processes that die while this one runs
RETRY_FIRST_S, RETRY_MAX_S = 0.1, 5.0
STOP_TIMEOUT_S = 5.0

_log = logging.getLogger("agent_history.producer.shipper")
InFlight = deque[tuple[SegmentLog, Position, int, "asyncio.Future[Any]"]]


class Shipper:
    """One run of shipping, on the loop that calls ``run``; ``stop`` and the spool's wake-ups
    may come from any thread."""

    def __init__(
        self, spool: Spool, settings: ProducerSettings, make_producer: Callable[[], Producer]
    ) -> None:
        self._spool, self._settings, self._make_producer = spool, settings, make_producer
        self._outage = Outage(
            _log, f"shipping {settings.topic} fails; its events wait in the spool"
        )
        self._loop = asyncio.get_running_loop()
        self._thread = threading.get_ident()
        self._wake, self._stopped = asyncio.Event(), asyncio.Event()
        self._delivered = False

    def stop(self) -> None:
        """Make ``run`` return; what is not yet acknowledged stays spooled."""
        self._soon(self._stopped.set)
        self._soon(self._wake.set)

    def _poke(self) -> None:
        self._soon(self._wake.set)

    def _soon(self, call: Callable[[], object]) -> None:
        if threading.get_ident() == self._thread:
            call()
            return
        with contextlib.suppress(RuntimeError):  # a closed loop: nothing there to wake any more
            self._loop.call_soon_threadsafe(call)

    async def run(self) -> None:
        """Ship until stopped; a failing broker is tried again with backoff, never given up."""
        chores = [asyncio.create_task(self._keep_adopting())]
        if self._settings.spool_fsync == "interval":
            chores.append(asyncio.create_task(self._keep_syncing()))
        delay = RETRY_FIRST_S
        try:
            while not self._stopped.is_set():
                producer = self._make_producer()
                self._delivered = False
                try:
                    await _start(producer)
                    await self._ship(producer)
                except Exception as error:  # the broker, the network, anything of the client's
                    self._spool.note_error()
                    self._outage.failed(error)
                finally:
                    await _stop(producer)
                    for log in self._spool.logs():
                        log.rewind()
                delay = RETRY_FIRST_S if self._delivered else min(delay * 2, RETRY_MAX_S)
                await _sleep_unless(self._stopped, delay)
        finally:
            for chore in chores:
                chore.cancel()
            await asyncio.gather(*chores, return_exceptions=True)

    async def _ship(self, producer: Producer) -> None:
        """Send and acknowledge until stopped; raises what made the producer fail."""
        in_flight: InFlight = deque()
        sent, freed = asyncio.Event(), asyncio.Event()
        tasks = [
            asyncio.create_task(self._send(producer, in_flight, sent, freed)),
            asyncio.create_task(self._acknowledge(producer, in_flight, sent, freed)),
            # Stopping must not wait for a send that waits for a broker that is gone.
            asyncio.create_task(self._stopped.wait()),
        ]
        try:
            done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            for *_, future in in_flight:  # given up on: their failures are not news
                future.add_done_callback(_ignore_outcome)
        for task in done:
            task.result()

    async def _send(
        self, producer: Producer, in_flight: InFlight, sent: asyncio.Event, freed: asyncio.Event
    ) -> None:
        topic = self._settings.topic
        as_record = CONTENT_MODES[self._settings.content_mode]
        # Once the spool is read to its end, wait linger_ms before parking: what is recorded
        # meanwhile is read in one go, not after a wake-up per run. A wake-up costs the
        # recording thread a syscall and, with the shipper on a thread of its own, hands it the
        # GIL in the middle of a run; aiokafka holds each batch for linger_ms anyway.
        linger, lingered = self._settings.linger_ms / 1000, False
        while not self._stopped.is_set():
            if len(in_flight) >= MAX_IN_FLIGHT:
                freed.clear()
                await freed.wait()
                continue
            log, frames = self._next_frames()
            if log is None:
                if not lingered:
                    lingered = True
                    await asyncio.sleep(linger)
                    continue
                lingered = False
                if self._spool.park(self._poke):
                    await self._wake.wait()
                    self._wake.clear()
                else:
                    await asyncio.sleep(0)  # never a loop that does not let the agent run
                continue
            for segment, frame in frames:
                try:
                    headers, value = as_record(frame.value)
                    future = await producer.send(topic, value, key=frame.key, headers=headers)
                except UNSENDABLE as error:
                    future = self._loop.create_future()
                    future.set_exception(error)
                in_flight.append((log, (segment, frame.end), frame.size, future))
            sent.set()
            lingered = False

    def _next_frames(self) -> tuple[SegmentLog | None, list[tuple[int, Frame]]]:
        for log in self._spool.logs():
            if not log.read_all:
                frames = log.read(READ_BYTES)
                if frames:
                    return log, frames
        return None, []

    async def _acknowledge(
        self, producer: Producer, in_flight: InFlight, sent: asyncio.Event, freed: asyncio.Event
    ) -> None:
        """Take the broker's acknowledgements in send order; raise the first failure."""
        head, waiting_since = None, self._loop.time()
        while True:
            if not in_flight:
                sent.clear()
                await sent.wait()
                continue
            if in_flight[0][3] is not head:
                head, waiting_since = in_flight[0][3], self._loop.time()
            done, _ = await asyncio.wait([head], timeout=STALL_S)
            if not done:
                if not await producer.reachable():
                    raise BrokerGone("no broker answers")
                if self._loop.time() - waiting_since > ACK_TIMEOUT_S:
                    raise BrokerGone(f"no acknowledgement in {ACK_TIMEOUT_S:g} s")
                continue
            acked: dict[SegmentLog, tuple[Position, int, int]] = {}
            failure = None
            while in_flight and in_flight[0][3].done() and failure is None:
                log, position, size, future = in_flight[0]
                failure = future.exception()
                if isinstance(failure, UNSENDABLE):
                    _log.error("dropped an event the broker will never take: %r", failure)
                    self._spool.note_error(lost=1)
                    failure = None
                if failure is None:
                    in_flight.popleft()
                    _, events, nbytes = acked.get(log, (position, 0, 0))
                    acked[log] = (position, events + 1, nbytes + size)
            for log, (position, events, nbytes) in acked.items():
                self._spool.acknowledge(log, position, events, nbytes)
            if failure is not None:
                raise failure  # everything from this event on is sent again
            self._delivered = True
            self._outage.recovered()
            freed.set()

    async def _keep_adopting(self) -> None:
        adopting = Outage(_log, f"looking for orphaned events in {self._spool.folder} failed")
        while True:
            try:
                if await asyncio.to_thread(self._spool.adopt_orphans):
                    self._wake.set()
                adopting.recovered()
            except Exception as error:  # a folder we cannot read now; maybe later
                self._spool.note_error()
                adopting.failed(error)
            await asyncio.sleep(ADOPT_EVERY_S)

    async def _keep_syncing(self) -> None:
        syncing = Outage(_log, "fsync of the spool failed")
        while True:
            await asyncio.sleep(self._settings.spool_fsync_interval_ms / 1000)
            try:
                await asyncio.to_thread(self._spool.sync)
                syncing.recovered()
            except Exception as error:  # the disk; the next interval tries again
                self._spool.note_error()
                syncing.failed(error)


class BrokerGone(Exception):
    pass


def _ignore_outcome(future: asyncio.Future[Any]) -> None:
    if not future.cancelled():
        future.exception()


async def _start(producer: Producer) -> None:
    try:
        await asyncio.wait_for(producer.start(), START_TIMEOUT_S)
    except TimeoutError:
        raise BrokerGone(f"the Kafka producer did not start in {START_TIMEOUT_S:g} s") from None


async def _stop(producer: Producer) -> None:
    try:
        await asyncio.wait_for(producer.stop(), STOP_TIMEOUT_S)
    except asyncio.CancelledError:
        # One of aiokafka's own tasks, cancelled as it closes, is no reason to stop shipping:
        # only a cancellation of this task is (a shipper that dies ships nothing, ever).
        task = asyncio.current_task()
        if task is not None and task.cancelling():
            raise
        _log.debug("stopping the Kafka producer: cancelled inside aiokafka")
    except Exception as error:  # stopping a broken producer may fail too; it is dropped anyway
        _log.debug("stopping the Kafka producer: %r", error)


async def _sleep_unless(event: asyncio.Event, seconds: float) -> None:
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(event.wait(), seconds)
