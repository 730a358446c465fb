"""One writer's events in a spool folder: its segment files, acknowledged position and lock.

For writer W (``<pid>-<random hex>``) the folder holds:
- ``W.lock``, flock'ed by the process that owns the log for as long as it does. A log whose
  lock is free belongs to no one alive: the next publisher to find it adopts it.
- ``W.<n>.seg``, the segments: MAGIC, then frames (framing.py), appended by W alone.
- ``W.ack``, the position up to which the broker acknowledged everything. Never fsynced: a
  lost one only means events sent again, and the fold ignores a duplicate.
A segment is deleted once the broker has acknowledged all of it.
"""

from __future__ import annotations

import fcntl
import os
import threading
from collections.abc import Callable
from pathlib import Path

from agent_history.producer import segment_files as files
from agent_history.producer.framing import MAGIC, Frame
from agent_history.producer.segment_files import Position

_OPEN_FLAGS = os.O_CLOEXEC | os.O_CREAT


class LogClosed(Exception):
    """Appended to after it was released (a thread racing the publisher's close)."""


class SegmentLog:
    """Appended to by its writer's threads (``append``), read and acknowledged by one shipper."""

    def __init__(self, folder: Path, writer: str, lock_fd: int, sizes: dict[int, int]) -> None:
        self.folder, self.writer = folder, writer
        self._lock_fd = lock_fd
        self._lock = threading.Lock()
        # Bytes of whole frames per segment present; the last one grows while its writer writes.
        self._sizes = sizes
        first, last = min(sizes), max(sizes)
        self.end: Position = (last, sizes[last])
        self.acked: Position = (first, len(MAGIC))
        self._read: Position = self.acked
        self.events = 0  # recorded and not yet acknowledged
        self.bytes = 0
        self._readers: dict[int, int] = {}
        self._ack_fd: int | None = None
        self._append_fd: int | None = None
        self._retired: list[int] = []  # descriptors of full segments, closed after their sync
        self._dirty = self._new_file = False
        self._waker: Callable[[], None] | None = None

    @classmethod
    def create(cls, folder: Path) -> SegmentLog:
        """A new log for this process, its lock held."""
        folder.mkdir(parents=True, exist_ok=True)
        writer = f"{os.getpid()}-{os.urandom(4).hex()}"
        # Locked before it has its name: a lock file that other publishers can see is never
        # free while its writer lives, or one of them could adopt a live log.
        unnamed = folder / f".{writer}.lock.new"
        lock_fd = os.open(unnamed, os.O_RDWR | _OPEN_FLAGS, 0o600)
        fcntl.flock(lock_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        os.rename(unnamed, folder / f"{writer}.lock")
        log = cls(folder, writer, lock_fd, {1: len(MAGIC)})
        log._append_fd = files.start_segment(log._path(1))
        log._new_file = True
        return log

    @classmethod
    def adopt(cls, folder: Path, writer: str) -> SegmentLog | None:
        """The log of a writer whose lock is free, its torn tail cut; None if someone holds it or
        nothing is left in it."""
        lock_fd = files.take_lock(folder / f"{writer}.lock")
        if lock_fd is None:
            return None
        found = files.segments_of(folder, writer)
        acked = files.read_ack(folder / f"{writer}.ack")
        scanned = files.scan(folder, writer, found, acked)
        if scanned is None:
            files.remove_writer(folder, writer, [])
            os.close(lock_fd)
            return None
        sizes, acked, events, nbytes = scanned
        log = cls(folder, writer, lock_fd, sizes)
        log.acked = log._read = acked
        log.events, log.bytes = events, nbytes
        return log

    def _path(self, segment: int) -> Path:
        return self.folder / f"{self.writer}.{segment:010d}.seg"

    # ---- the writer ---------------------------------------------------------------------------

    def append(self, frame: bytes, room: int, segment_bytes: int, fsync: bool) -> bool:
        """Write one frame unless the log holds ``room`` bytes already; raises OSError."""
        with self._lock:
            if self.bytes + len(frame) > room:
                return False
            if self._append_fd is None:
                raise LogClosed
            segment, offset = self.end
            if offset >= segment_bytes:
                fd = files.start_segment(self._path(segment + 1), sync_folder=fsync)
                self._retired.append(self._append_fd)
                self._append_fd, self._new_file = fd, True
                segment, offset = segment + 1, len(MAGIC)
                self._sizes[segment] = offset
            if os.pwrite(self._append_fd, frame, offset) != len(frame):  # rare: write the rest
                files.write_whole(self._append_fd, frame, offset)
            if fsync:
                os.fdatasync(self._append_fd)
            self._sizes[segment] = offset = offset + len(frame)
            self.end = (segment, offset)
            self.events += 1
            self.bytes += len(frame)
            self._dirty = True
            waker, self._waker = self._waker, None
        if waker is not None:
            waker()
        return True

    def sync(self) -> None:
        """fsync what was written since the last sync (the ``interval`` policy)."""
        with self._lock:
            if not self._dirty or self._append_fd is None:
                return
            retired, self._retired = self._retired, []
            fds = [*retired, os.dup(self._append_fd)]
            new_file, self._dirty, self._new_file = self._new_file, False, False
        for fd in fds:
            try:
                os.fdatasync(fd)
            finally:
                os.close(fd)
        if new_file:
            files.sync_folder_of(self._path(self.end[0]))

    # ---- the shipper --------------------------------------------------------------------------

    def park(self, waker: Callable[[], None]) -> bool:
        """Unless there is something to read, have the next append call ``waker``."""
        with self._lock:
            if not self.read_all:
                return False
            self._waker = waker
            return True

    def read(self, budget: int) -> list[tuple[int, Frame]]:
        """The next frames after the last ones read, about ``budget`` bytes of them."""
        taken: list[tuple[int, Frame]] = []
        while budget > 0:
            segment, offset = self._read
            end = self.end  # frames before it are whole and never change
            stop = end[1] if segment == end[0] else self._sizes[segment]
            if offset >= stop:
                if segment >= end[0]:
                    break
                self._close_reader(segment)
                with self._lock:
                    self._read = (self._after(segment), len(MAGIC))
                continue
            fd = self._readers.get(segment)
            if fd is None:
                fd = self._readers[segment] = os.open(self._path(segment), os.O_RDONLY)
            frames, after = files.read_frames(fd, offset, stop, budget)
            taken += [(segment, frame) for frame in frames]
            budget -= after - offset
            self._read = (segment, after)
        return taken

    def rewind(self) -> None:
        """Read again from the acknowledged position (what was in flight was lost)."""
        self._read = self.acked

    def acknowledge(self, position: Position, events: int, nbytes: int) -> None:
        with self._lock:
            segment, offset = position
            if offset >= self._sizes[segment] and segment < self.end[0]:
                position = (self._after(segment), len(MAGIC))
            self.acked = position
            self.events -= events
            self.bytes -= nbytes
            done = [n for n in self._sizes if n < position[0]]
            for n in done:
                del self._sizes[n]
        for n in done:
            self._close_reader(n)
            self._path(n).unlink(missing_ok=True)
        if self._ack_fd is None:
            self._ack_fd = os.open(self.folder / f"{self.writer}.ack", os.O_RDWR | _OPEN_FLAGS)
        files.write_ack(self._ack_fd, position)

    def _after(self, segment: int) -> int:
        """The segment after ``segment`` (an adopted log's numbers have gaps); under the lock:
        a rotation adds to the sizes meanwhile."""
        return min(n for n in self._sizes if n > segment)

    @property
    def read_all(self) -> bool:
        return self._read >= self.end

    @property
    def drained(self) -> bool:
        return self.acked >= self.end

    def oldest_ns(self) -> int | None:
        """When the oldest event not yet acknowledged was recorded."""
        segment, offset = self.acked
        return None if self.drained else files.recorded_at_frame(self._path(segment), offset)

    def release(self) -> None:
        """Give the log up: deleted if the broker has all of it, else left for adoption."""
        with self._lock:
            fds = [*self._readers.values(), *self._retired, self._append_fd, self._ack_fd]
            self._readers, self._retired, self._append_fd, self._ack_fd = {}, [], None, None
        for fd in fds:
            if fd is not None:
                os.close(fd)
        if self.drained:
            files.remove_writer(self.folder, self.writer, [*self._sizes])
        os.close(self._lock_fd)  # the flock goes with it

    def _close_reader(self, segment: int) -> None:
        fd = self._readers.pop(segment, None)
        if fd is not None:
            os.close(fd)
