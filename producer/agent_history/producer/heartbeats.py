"""The runs a publisher has open, and the heartbeats that tell the watchdog they are alive.

One loop per publisher beats for all of its open runs, on the shipper's loop: a run costs an
entry in a dict, not a task or a thread of its own, and synchronous runs in any thread are
covered the same way.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Awaitable, Callable
from uuid import UUID

from agent_history.contract.events import ExecutionData

_log = logging.getLogger("agent_history.producer")


class Heartbeats:
    def __init__(self, interval_s: float) -> None:
        self._interval_s = interval_s
        self._open: dict[UUID, ExecutionData] = {}
        self._lock = threading.Lock()

    def opened(self, data: ExecutionData) -> None:
        """A run's Started event is recorded: beat for it until ``closed``."""
        # Kept as given (a RunRequestData, say): the heartbeat's data is made when a beat is
        # due, not on every run's way in.
        with self._lock:
            self._open[data.execution_id] = data

    def closed(self, execution_id: UUID) -> None:
        with self._lock:
            self._open.pop(execution_id, None)

    def open_runs(self) -> list[ExecutionData]:
        with self._lock:
            runs = list(self._open.values())
        return [
            ExecutionData(execution_id=r.execution_id, agent_id=r.agent_id, user_id=r.user_id)
            for r in runs
        ]

    async def beat(self, emit: Callable[[ExecutionData], Awaitable[object]]) -> None:
        """Every interval, one heartbeat per open run, until cancelled."""
        while True:
            await asyncio.sleep(self._interval_s)
            for run in self.open_runs():
                try:
                    await emit(run)
                except Exception:  # a heartbeat must never stop the next ones
                    _log.exception("heartbeat of execution %s not recorded", run.execution_id)
