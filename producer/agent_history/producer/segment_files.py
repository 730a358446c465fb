"""The files of the segment logs: names, locks, the acknowledged position, reading frames, and
the scan that an adopted log gets (torn tails cut)."""

from __future__ import annotations

import errno
import fcntl
import logging
import os
import re
import struct
import zlib
from pathlib import Path
from typing import NamedTuple, TypeAlias

from agent_history.producer.framing import HEAD_BYTES, MAGIC, Frame, decode_frames, recorded_at

Position: TypeAlias = tuple[int, int]  # (segment number, offset in it)

_log = logging.getLogger("agent_history.producer.spool")
_NAME = re.compile(r"^(?P<writer>\d+-[0-9a-f]{8})\.(?:(?P<segment>\d{10})\.seg|lock|ack)$")
_ACK = struct.Struct("<QQI")
_CHUNK = 1 << 20


class Scanned(NamedTuple):
    sizes: dict[int, int]  # bytes of whole frames per segment
    acked: Position
    events: int
    bytes: int


def writers_in(folder: Path) -> set[str]:
    try:
        names = os.listdir(folder)
    except FileNotFoundError:
        return set()
    return {m["writer"] for m in map(_NAME.match, names) if m is not None}


def segments_of(folder: Path, writer: str) -> list[int]:
    found = (_NAME.match(name) for name in os.listdir(folder))
    return sorted(int(m["segment"]) for m in found if m and m["segment"] and m["writer"] == writer)


def take_lock(path: Path) -> int | None:
    """The descriptor holding the flock on ``path``; None while another process holds it."""
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        # A log removed by the previous owner meanwhile: the lock is on a deleted file.
        if os.fstat(fd).st_ino != os.stat(path).st_ino:
            raise BlockingIOError(errno.ENOENT, "lock file replaced")
    except OSError:
        os.close(fd)
        return None
    return fd


def remove_writer(folder: Path, writer: str, segments: list[int]) -> None:
    """Delete a writer's ``segments``, and its other files once no segment of it is left."""
    for n in segments:
        (folder / f"{writer}.{n:010d}.seg").unlink(missing_ok=True)
    if not segments_of(folder, writer):
        (folder / f"{writer}.ack").unlink(missing_ok=True)
        (folder / f"{writer}.lock").unlink(missing_ok=True)


def read_ack(path: Path) -> Position | None:
    try:
        data = path.read_bytes()[: _ACK.size]
    except FileNotFoundError:
        return None
    if len(data) < _ACK.size:
        return None
    segment, offset, crc = _ACK.unpack(data)
    return (segment, offset) if zlib.crc32(data[:16]) == crc else None


def write_ack(fd: int, position: Position) -> None:
    record = struct.pack("<QQ", *position)
    os.pwrite(fd, record + struct.pack("<I", zlib.crc32(record)), 0)


def start_segment(path: Path, *, sync_folder: bool = False) -> int:
    """A new segment, open for writing; none at all if that fails half-way."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
    try:
        write_whole(fd, MAGIC, 0)
        if sync_folder:
            os.fdatasync(fd)
            sync_folder_of(path)
    except OSError:
        os.close(fd)
        path.unlink(missing_ok=True)
        raise
    return fd


def sync_folder_of(path: Path) -> None:
    """fsync the folder holding ``path``, so that a new file's name survives a machine crash."""
    fd = os.open(path.parent, os.O_RDONLY | os.O_CLOEXEC)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_whole(fd: int, data: bytes, offset: int) -> None:
    """Write all of ``data`` at ``offset``; on failure nothing of it stays in the file."""
    done = 0
    try:
        while done < len(data):
            done += os.pwrite(fd, data[done:] if done else data, offset + done)
    except OSError:
        if done:
            os.ftruncate(fd, offset)
        raise


def read_frames(fd: int, start: int, stop: int, budget: int) -> tuple[list[Frame], int]:
    """Whole frames from ``start``, about ``budget`` bytes, never past ``stop``; and where the
    next read starts. What is not a frame there is skipped (logged): the disk changed under us."""
    data = os.pread(fd, min(stop - start, max(budget, _CHUNK)), start)
    decoded = decode_frames(data, start)
    if not decoded.frames and not decoded.damaged and start + decoded.wanted <= stop:
        decoded = decode_frames(os.pread(fd, decoded.wanted, start), start)  # a big frame
    if decoded.damaged or not decoded.frames:
        _log.error("the spool file changed under its reader: %d bytes skipped", stop - start)
        return decoded.frames, stop
    return decoded.frames, decoded.end


def recorded_at_frame(path: Path, offset: int) -> int | None:
    """When the frame at ``offset`` of the segment at ``path`` was recorded, if it is there."""
    try:
        with path.open("rb") as segment:
            segment.seek(offset)
            return recorded_at(segment.read(HEAD_BYTES))
    except OSError:
        return None


def scan(folder: Path, writer: str, segments: list[int], acked: Position | None) -> Scanned | None:
    """Count an orphaned log's events not yet acknowledged, cutting a torn tail off each
    segment and deleting segments with nothing left to send; None when nothing is left."""
    sizes: dict[int, int] = {}
    events = nbytes = 0
    for n in segments:
        path = folder / f"{writer}.{n:010d}.seg"
        start = acked[1] if acked is not None and n == acked[0] else len(MAGIC)
        if acked is not None and n < acked[0]:
            path.unlink(missing_ok=True)
            continue
        counted = _scan_segment(path, start)
        if counted is None:  # another format: left alone
            continue
        size, count, counted_bytes = counted
        if count == 0:
            path.unlink(missing_ok=True)
            continue
        sizes[n] = size
        events, nbytes = events + count, nbytes + counted_bytes
    if not sizes:
        return None
    first = min(sizes)
    resume = acked if acked is not None and acked[0] == first else (first, len(MAGIC))
    return Scanned(sizes, resume, events, nbytes)


def _scan_segment(path: Path, start: int) -> tuple[int, int, int] | None:
    """(bytes of whole frames, events after ``start``, their bytes), the tail cut."""
    with path.open("r+b") as segment:
        head = segment.read(len(MAGIC))
        if len(head) < len(MAGIC) or not head.strip(b"\0"):
            return len(MAGIC), 0, 0  # torn while it was being created
        if head != MAGIC:
            _log.warning("%s is not a spool segment of this version: left alone", path)
            return None
        fd, at, events, nbytes = segment.fileno(), start, 0, 0
        size = os.fstat(fd).st_size
        while at < size:
            data = os.pread(fd, max(_CHUNK, HEAD_BYTES), at)
            decoded = decode_frames(data, at)
            if not decoded.frames and not decoded.damaged and at + decoded.wanted <= size:
                decoded = decode_frames(os.pread(fd, decoded.wanted, at), at)
            events += len(decoded.frames)
            nbytes += decoded.end - at
            if not decoded.frames:
                break
            at = decoded.end
        if at < size:
            _log.warning("cut a torn tail of %d bytes off %s", size - at, path)
            segment.truncate(at)
        return at, events, nbytes
