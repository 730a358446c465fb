"""The spool: recorded events wait in local files until the broker has them.

One folder per topic, shared by every process of the host that records to it; each publisher
appends to a segment log of its own (segments.py) and ships it, and adopts the logs that dead
processes left behind. Appending is a write() into the OS: an event in the spool survives its
process being killed a moment later. Bounded: at ``max_bytes`` not yet acknowledged, a record
waits up to ``full_wait_s`` for room, then it is lost, counted and logged, never raised.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, TypeAlias

from agent_history.producer.outage import Outage
from agent_history.producer.segment_files import Position, writers_in
from agent_history.producer.segments import LogClosed, SegmentLog
from agent_history.producer.settings import FsyncPolicy

SEGMENT_BYTES = 16 << 20
Outcome: TypeAlias = Literal["stored", "full", "failed"]
Marks: TypeAlias = dict[SegmentLog, Position]

_log = logging.getLogger("agent_history.producer.spool")


@dataclass(frozen=True)
class SpoolStats:
    """The spool of one publisher, for metrics: what waits for the broker, and what happened."""

    events: int  # recorded (or adopted) and not yet acknowledged by the broker
    bytes: int
    oldest_age_s: float | None  # age of the oldest of them; None when there is none
    sent: int  # acknowledged by the broker since the publisher was made
    lost: int  # never spooled: the spool was full, or the disk failed
    errors: int  # failures of the disk or the broker, each one logged or part of a logged outage


class Spool:
    def __init__(
        self,
        folder: Path,
        *,
        max_bytes: int,
        full_wait_s: float,
        fsync: FsyncPolicy,
        segment_bytes: int = SEGMENT_BYTES,
    ) -> None:
        self.folder = folder
        self._max_bytes, self._full_wait_s = max_bytes, full_wait_s
        self._fsync = fsync
        self._append_options = (segment_bytes, fsync == "always")
        self._lock = threading.Lock()
        self._room = threading.Condition()  # notified whenever the broker acknowledged some
        self._own: SegmentLog | None = None
        self._adopted: list[SegmentLog] = []  # replaced, never changed in place
        self._waker: Callable[[], None] | None = None  # for the own log, once it is open
        self._full = Outage(_log, "the spool is full; events are lost until there is room")
        self._failing = Outage(_log, "writing to the spool failed; events are lost")
        self.sent = self.lost = self.errors = 0

    # ---- recording (any thread) ---------------------------------------------------------------

    def offer(self, frame: bytes) -> Outcome:
        """Append without waiting: "full" when there is no room for it now."""
        adopted = self._adopted
        room = self._max_bytes - (sum(log.bytes for log in adopted) if adopted else 0)
        try:
            try:
                stored = (self._own or self.open()).append(frame, room, *self._append_options)
            except LogClosed:  # closed by another thread meanwhile: in a new log, then
                stored = self.open().append(frame, room, *self._append_options)
            if not stored:
                return "full"
        except (OSError, LogClosed) as error:
            self.note_error(lost=1)
            with self._lock:
                self._failing.failed(error)
            return "failed"
        if self._full.active or self._failing.active:
            with self._lock:
                self._full.recovered()
                self._failing.recovered()
        return "stored"

    def append(self, frame: bytes) -> None:
        """Append, waiting up to the bound for room when full (unless it was already full
        without room last time: then the event is lost at once)."""
        outcome = self.offer(frame)
        if outcome == "full" and not self._full.active:
            deadline = time.monotonic() + self._full_wait_s
            with self._room:
                outcome = self.offer(frame)  # room made since is not missed: notify needs _room
                while outcome == "full" and (left := deadline - time.monotonic()) > 0:
                    self._room.wait(left)
                    outcome = self.offer(frame)
        if outcome == "full":
            with self._lock:
                self.lost += 1
                self._full.failed(f"{self._max_bytes} bytes wait for the broker in {self.folder}")

    def note_error(self, lost: int = 0) -> None:
        with self._lock:
            self.errors += 1
            self.lost += lost

    def open(self) -> SegmentLog:
        with self._lock:
            if self._own is None:
                self._own = SegmentLog.create(self.folder)
                if self._waker is not None:
                    self._own.park(self._waker)
            return self._own

    # ---- shipping (the shipper's thread) ------------------------------------------------------

    def adopt_orphans(self) -> int:
        """Take over the logs of processes that are gone; how many events they hold."""
        known = {log.writer for log in self.logs()}
        found = 0
        for writer in sorted(writers_in(self.folder) - known):
            log = SegmentLog.adopt(self.folder, writer)
            if log is not None:
                _log.warning(
                    "adopted %d events left in %s by writer %s", log.events, self.folder, writer
                )
                with self._lock:
                    self._adopted = [*self._adopted, log]
                found += log.events
        return found

    def logs(self) -> list[SegmentLog]:
        """What to ship, oldest first: the adopted logs, then this publisher's own."""
        own = self._own
        return [*self._adopted, *([own] if own is not None else [])]

    def park(self, waker: Callable[[], None]) -> bool:
        """Unless something is left to read, call ``waker`` on the next append."""
        if not all(log.read_all for log in self._adopted):
            return False
        with self._lock:
            own = self._own
            if own is None:
                self._waker = waker
                return True
        return own.park(waker)

    def acknowledge(self, log: SegmentLog, position: Position, events: int, nbytes: int) -> None:
        log.acknowledge(position, events, nbytes)
        with self._lock:
            self.sent += events
            if log is not self._own and log.drained:
                log.release()
                self._adopted = [other for other in self._adopted if other is not log]
        with self._room:
            self._room.notify_all()

    def sync(self) -> None:
        own = self._own
        if own is not None:
            own.sync()

    def marks(self) -> Marks:
        """Where every log ends now: what a flush waits for."""
        return {log: log.end for log in self.logs()}

    def acknowledged(self, marks: Marks) -> bool:
        return all(log.acked >= end for log, end in marks.items())

    def wait_acknowledged(self, marks: Marks, timeout: float) -> bool:
        """Block until the broker acknowledged everything up to ``marks``."""
        deadline = time.monotonic() + timeout
        with self._room:
            while not self.acknowledged(marks):
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._room.wait(left)
        return True

    def stats(self) -> SpoolStats:
        logs = self.logs()
        oldest = [ns for ns in (log.oldest_ns() for log in logs) if ns is not None]
        age = max(0.0, time.time() - min(oldest) / 1e9) if oldest else None
        events, nbytes = sum(log.events for log in logs), sum(log.bytes for log in logs)
        return SpoolStats(events, nbytes, age, self.sent, self.lost, self.errors)

    def close(self) -> None:
        """Let go of every log: deleted when the broker has all of it, else left for the next
        publisher on this folder."""
        if self._fsync != "never":
            self.sync()
        with self._lock:
            logs, self._own, self._adopted, self._waker = self.logs(), None, [], None
        for log in logs:
            log.release()
