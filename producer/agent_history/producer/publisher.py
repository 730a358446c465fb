"""Records execution events: each goes to the local spool at once, and a shipper sends the
spool to Kafka in the background. Recording never waits for the broker, and never raises
because of the disk or the broker (losses are counted in ``spool_stats()`` and logged)."""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Callable
from types import TracebackType
from typing import Self

from opentelemetry.trace import TracerProvider

from agent_history.contract.events import (
    CancelledData,
    CompletedData,
    Event,
    ExecutionCancelled,
    ExecutionCompleted,
    ExecutionData,
    ExecutionFailed,
    ExecutionHeartbeat,
    ExecutionQueued,
    ExecutionStarted,
    FailedData,
    RunRequestData,
    TerminalEvent,
)
from agent_history.producer.envelope import E, EndData, end_of, frame_of, stamp
from agent_history.producer.heartbeats import Heartbeats
from agent_history.producer.kafka import Producer, kafka_producer
from agent_history.producer.settings import ProducerSettings, spool_directory
from agent_history.producer.shipper import Shipper
from agent_history.producer.spool import Spool, SpoolStats
from agent_history.producer.tracing import RunTracing, TraceContext

_log = logging.getLogger("agent_history.producer")


class Publisher:
    """``async with Publisher(settings) as p:`` ships on the running loop (or connect()/close());
    ``with Publisher(settings) as p:`` ships from a thread of its own, for synchronous code.

    ``publish_*`` are awaitable, ``record_*`` their synchronous twins; both return the event.
    ``trace``: the W3C trace context to put on the event (``traceparent``, ``tracestate``);
    track_execution passes its run span's. Runs' spans go to ``tracer_provider``, by default
    OpenTelemetry's global one (nothing is traced until an SDK sets it).
    """

    def __init__(
        self,
        settings: ProducerSettings,
        *,
        make_producer: Callable[[], Producer] | None = None,
        tracer_provider: TracerProvider | None = None,
    ) -> None:
        self._settings = settings
        self.tracing = RunTracing(tracer_provider)
        self._spool = Spool(
            spool_directory(settings),
            max_bytes=settings.spool_max_bytes,
            full_wait_s=settings.spool_full_wait_ms / 1000,
            fsync=settings.spool_fsync,
        )
        self._make_producer = make_producer or kafka_producer(settings)
        self._shipper: Shipper | None = None
        self._task: asyncio.Task[None] | None = None
        self._thread: threading.Thread | None = None
        self._warned_unshipped = False
        self.heartbeats = Heartbeats(settings.heartbeat_interval_ms / 1000)
        self._beating: asyncio.Task[None] | None = None

    # ---- shipping ------------------------------------------------------------------------------

    async def connect(self) -> None:
        """Start shipping on this loop. Succeeds without a broker: it ships once there is one."""
        self._refuse_second_shipper()
        self._shipper = Shipper(self._spool, self._settings, self._make_producer)
        self._task = asyncio.create_task(self._shipper.run(), name="agent-history shipper")
        self._beating = asyncio.create_task(self._beat(), name="agent-history heartbeats")

    async def close(self) -> None:
        """Wait up to ``close_timeout_ms`` for the broker to have everything, then stop; what
        it does not have yet stays spooled, and the next publisher on this folder sends it."""
        if self._beating is not None:
            self._beating.cancel()
            self._beating = None
        if self._shipper is not None and self._task is not None:
            await self.flush(self._settings.close_timeout_ms / 1000)
            self._shipper.stop()
            await asyncio.gather(self._task, return_exceptions=True)
        self._shipper = self._task = None
        self._spool.close()

    def __enter__(self) -> Self:
        self._refuse_second_shipper()
        started = threading.Event()

        async def ship() -> None:
            try:
                self._shipper = shipper = Shipper(self._spool, self._settings, self._make_producer)
            finally:
                started.set()
            beating = asyncio.create_task(self._beat())
            try:
                await shipper.run()
            finally:
                beating.cancel()

        self._thread = threading.Thread(
            target=asyncio.run, args=(ship(),), name="agent-history shipper", daemon=True
        )
        self._thread.start()
        started.wait()
        return self

    def __exit__(self, *exc_info: object) -> None:
        if self._shipper is not None and self._thread is not None:
            self._spool.wait_acknowledged(
                self._spool.marks(), self._settings.close_timeout_ms / 1000
            )
            self._shipper.stop()
            self._thread.join()
        self._shipper = self._thread = None
        self._spool.close()

    async def __aenter__(self) -> Self:
        await self.connect()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    def _refuse_second_shipper(self) -> None:
        if self._shipper is not None:
            raise RuntimeError("this Publisher is shipping already")

    async def flush(self, timeout: float) -> bool:  # noqa: ASYNC109 (the public signature)
        """Wait until the broker acknowledged every event recorded so far; False if it has
        not within ``timeout`` seconds (or nothing ships: not connected)."""
        marks = self._spool.marks()
        deadline = time.monotonic() + timeout
        while not self._spool.acknowledged(marks):
            if self._shipper is None or time.monotonic() >= deadline:
                return False
            await asyncio.sleep(0.002)
        return True

    def spool_stats(self) -> SpoolStats:
        return self._spool.stats()

    # ---- recording -----------------------------------------------------------------------------

    async def publish(self, event: Event) -> None:
        """Spool one event. Waits only when the spool is full (up to ``spool_full_wait_ms``);
        cancelling the caller then does not take the event back."""
        frame = self._frame(event)
        if self._spool.offer(frame) == "full":
            await self._wait_for_room(frame)

    async def _wait_for_room(self, frame: bytes) -> None:
        # In a thread, so that the shipper can make room meanwhile when it runs on this loop.
        await asyncio.shield(asyncio.to_thread(self._spool.append, frame))

    def record(self, event: Event) -> None:
        """``publish`` for synchronous code (any thread)."""
        self._spool.append(self._frame(event))

    def _frame(self, event: Event) -> bytes:
        if self._shipper is None and not self._warned_unshipped:
            self._warned_unshipped = True
            _log.warning(
                "recording with no shipper running: events wait in %s for a connected Publisher",
                self._spool.folder,
            )
        return frame_of(event)

    async def _emit(self, kind: type[E], data: ExecutionData, trace: TraceContext = None) -> E:
        event = stamp(kind, data, self._settings.source, trace)
        frame = self._frame(event)  # as publish() does, one coroutine less on the hot path
        if self._spool.offer(frame) == "full":
            await self._wait_for_room(frame)
        return event

    def _write(self, kind: type[E], data: ExecutionData, trace: TraceContext = None) -> E:
        event = stamp(kind, data, self._settings.source, trace)
        self.record(event)
        return event

    async def publish_queued(
        self, data: RunRequestData, *, trace: TraceContext = None
    ) -> ExecutionQueued:
        return await self._emit(ExecutionQueued, data, trace)

    async def publish_started(
        self, data: RunRequestData, *, trace: TraceContext = None
    ) -> ExecutionStarted:
        return await self._emit(ExecutionStarted, data, trace)

    async def publish_completed(
        self, data: CompletedData, *, trace: TraceContext = None
    ) -> ExecutionCompleted:
        return await self._emit(ExecutionCompleted, data, trace)

    async def publish_failed(
        self, data: FailedData, *, trace: TraceContext = None
    ) -> ExecutionFailed:
        return await self._emit(ExecutionFailed, data, trace)

    async def publish_cancelled(
        self, data: CancelledData, *, trace: TraceContext = None
    ) -> ExecutionCancelled:
        return await self._emit(ExecutionCancelled, data, trace)

    def record_queued(self, data: RunRequestData, *, trace: TraceContext = None) -> ExecutionQueued:
        return self._write(ExecutionQueued, data, trace)

    def record_started(
        self, data: RunRequestData, *, trace: TraceContext = None
    ) -> ExecutionStarted:
        return self._write(ExecutionStarted, data, trace)

    def record_completed(
        self, data: CompletedData, *, trace: TraceContext = None
    ) -> ExecutionCompleted:
        return self._write(ExecutionCompleted, data, trace)

    def record_failed(self, data: FailedData, *, trace: TraceContext = None) -> ExecutionFailed:
        return self._write(ExecutionFailed, data, trace)

    def record_cancelled(
        self, data: CancelledData, *, trace: TraceContext = None
    ) -> ExecutionCancelled:
        return self._write(ExecutionCancelled, data, trace)

    async def publish_heartbeat(
        self, data: ExecutionData, *, trace: TraceContext = None
    ) -> ExecutionHeartbeat:
        return await self._emit(ExecutionHeartbeat, data, trace)

    async def _beat(self) -> None:
        await self.heartbeats.beat(self._heartbeat)

    async def _heartbeat(self, data: ExecutionData, trace: TraceContext) -> None:
        await self._emit(ExecutionHeartbeat, data, trace)

    async def publish_end(self, data: EndData, *, trace: TraceContext = None) -> TerminalEvent:
        """The run's end: Completed, Failed or Cancelled, by the type of ``data``."""
        return await self._emit(end_of(data), data, trace)

    def record_end(self, data: EndData, *, trace: TraceContext = None) -> TerminalEvent:
        return self._write(end_of(data), data, trace)
