"""The spool on a real folder: append, read, acknowledge, adopt what dead writers left, cut
torn tails, stay within its size, and take appends from many threads."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from agent_history.producer.framing import encode_frame
from agent_history.producer.segments import SegmentLog
from agent_history.producer.spool import Spool


def frame(n: int, size: int = 100) -> bytes:
    return encode_frame(f"key-{n}".encode(), str(n).encode().ljust(size, b"."), time.time_ns())


def spool(folder: Path, **options: object) -> Spool:
    settings: dict[str, object] = {"max_bytes": 1 << 20, "full_wait_s": 0.05, "fsync": "never"}
    return Spool(folder, **{**settings, **options})  # type: ignore[arg-type]


def read_all(log: SegmentLog) -> list[tuple[int, bytes, tuple[int, int], int]]:
    """(n, key, position after it, size) of every frame left to read."""
    taken = []
    while frames := log.read(1000):
        taken += [(int(f.key[4:]), f.key, (s, f.end), f.size) for s, f in frames]
    return taken


def acknowledge(
    s: Spool, log: SegmentLog, frames: list[tuple[int, bytes, tuple[int, int], int]]
) -> None:
    s.acknowledge(log, frames[-1][2], len(frames), sum(f[3] for f in frames))


def test_events_read_back_in_order_and_leave_once_acknowledged(tmp_path: Path) -> None:
    s = spool(tmp_path, segment_bytes=2000)
    for n in range(100):
        assert s.offer(frame(n)) == "stored"
    (log,) = s.logs()
    frames = read_all(log)
    assert [f[0] for f in frames] == list(range(100))
    segments = sorted(tmp_path.glob("*.seg"))
    assert len(segments) > 5, "small segments: the log rotated"
    assert (s.stats().events, s.stats().bytes) == (100, sum(f[3] for f in frames))

    acknowledge(s, log, frames[:50])

    assert (s.stats().events, s.stats().sent) == (50, 50)
    left = sorted(tmp_path.glob("*.seg"))
    assert len(left) < len(segments), "acknowledged segments are deleted"
    assert segments[-len(left) :] == left
    acknowledge(s, log, frames[50:])
    assert s.stats().events == 0
    assert s.stats().oldest_age_s is None
    s.close()
    assert os.listdir(tmp_path) == [], "a drained log leaves nothing behind"


def test_a_log_given_up_is_adopted_from_where_the_broker_stopped(tmp_path: Path) -> None:
    first = spool(tmp_path)
    for n in range(10):
        first.offer(frame(n))
    (log,) = first.logs()
    acknowledge(first, log, read_all(log)[:4])
    first.close()

    second = spool(tmp_path)
    assert second.adopt_orphans() == 6
    (adopted,) = second.logs()
    frames = read_all(adopted)
    assert [f[0] for f in frames] == [4, 5, 6, 7, 8, 9]
    assert second.stats().events == 6
    acknowledge(second, adopted, frames)
    assert second.logs() == [], "an adopted log is deleted once shipped"
    assert os.listdir(tmp_path) == []


def test_the_log_of_a_live_writer_is_never_adopted(tmp_path: Path) -> None:
    alive = spool(tmp_path)
    alive.offer(frame(1))

    other = spool(tmp_path)
    assert other.adopt_orphans() == 0
    assert other.logs() == []


def test_a_process_killed_after_appending_leaves_every_event(tmp_path: Path) -> None:
    script = f"""
import os, signal, sys
sys.path[:0] = {sys.path!r}
from tests.unit.producer.test_spool import frame, spool
s = spool(__import__("pathlib").Path({str(tmp_path)!r}))
for n in range(50):
    s.offer(frame(n))
os.kill(os.getpid(), signal.SIGKILL)
"""
    done = subprocess.run([sys.executable, "-c", script], check=False)
    assert done.returncode == -9

    heir = spool(tmp_path)
    assert heir.adopt_orphans() == 50
    assert [f[0] for f in read_all(heir.logs()[0])] == list(range(50))


def test_processes_sharing_a_folder_keep_to_their_own_logs(tmp_path: Path) -> None:
    script = f"""
import sys
sys.path[:0] = {sys.path!r}
from pathlib import Path
from tests.unit.producer.test_spool import frame, spool
s = spool(Path({str(tmp_path)!r}))
for n in range(200):
    s.offer(frame(int(sys.argv[1]) * 1000 + n))
assert s.adopt_orphans() == 0, "a live writer's log was taken"
print(len(s.logs()), flush=True)
sys.stdin.read()  # hold the log until the test has seen all three alive
"""
    workers = [
        subprocess.Popen(
            [sys.executable, "-c", script, str(n)], stdin=subprocess.PIPE, stdout=subprocess.PIPE
        )
        for n in range(3)
    ]
    assert [w.stdout.readline() for w in workers if w.stdout] == [b"1\n"] * 3
    for worker in workers:
        worker.communicate()
        assert worker.returncode == 0

    heir = spool(tmp_path)
    assert heir.adopt_orphans() == 600
    numbers = [f[0] for log in heir.logs() for f in read_all(log)]
    assert sorted(numbers) == sorted(w * 1000 + n for w in range(3) for n in range(200))


def test_a_torn_tail_is_cut_when_the_log_is_adopted(tmp_path: Path) -> None:
    dead = spool(tmp_path)
    for n in range(3):
        dead.offer(frame(n))
    dead.close()
    (segment,) = tmp_path.glob("*.seg")
    whole = segment.stat().st_size
    with segment.open("ab") as torn:
        torn.write(frame(3)[:-7])

    heir = spool(tmp_path)
    assert heir.adopt_orphans() == 3
    assert segment.stat().st_size == whole, "the torn frame is cut off the file"
    assert [f[0] for f in read_all(heir.logs()[0])] == [0, 1, 2]


def test_a_full_spool_waits_its_bound_then_loses_and_counts(tmp_path: Path) -> None:
    s = spool(tmp_path, max_bytes=3 * len(frame(0)), full_wait_s=0.2)
    for n in range(3):
        assert s.offer(frame(n)) == "stored"
    assert s.offer(frame(3)) == "full"

    began = time.monotonic()
    s.append(frame(3))
    waited = time.monotonic() - began
    assert 0.2 <= waited < 1.0, waited
    assert s.stats().lost == 1

    began = time.monotonic()
    s.append(frame(4))
    assert time.monotonic() - began < 0.05, "still full: lost at once, no second wait"
    assert s.stats().lost == 2

    (log,) = s.logs()
    acknowledge(s, log, read_all(log)[:1])
    s.append(frame(5))
    assert (s.stats().events, s.stats().lost) == (3, 2)


def test_room_made_while_waiting_takes_the_event(tmp_path: Path) -> None:
    s = spool(tmp_path, max_bytes=2 * len(frame(0)), full_wait_s=5.0)
    s.offer(frame(0))
    s.offer(frame(1))
    (log,) = s.logs()
    frames = read_all(log)
    threading.Timer(0.05, acknowledge, (s, log, frames)).start()

    began = time.monotonic()
    s.append(frame(2))

    assert time.monotonic() - began < 2.0
    assert (s.stats().events, s.stats().lost) == (1, 0)


def test_appends_from_many_threads_are_each_stored_once(tmp_path: Path) -> None:
    s = spool(tmp_path, segment_bytes=50_000)

    def record(thread: int) -> None:
        for n in range(500):
            s.append(frame(thread * 1000 + n))

    threads = [threading.Thread(target=record, args=(n,)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    numbers = [f[0] for f in read_all(s.logs()[0])]
    assert sorted(numbers) == sorted(t * 1000 + n for t in range(8) for n in range(500))
    for t in range(8):
        mine = [n for n in numbers if n // 1000 == t]
        assert mine == sorted(mine), "each thread's events stay in its order"


@pytest.mark.parametrize("fsync", ["interval", "always"])
def test_syncing_keeps_no_descriptor_open(tmp_path: Path, fsync: str) -> None:
    before = len(os.listdir("/proc/self/fd"))
    s = spool(tmp_path, segment_bytes=1000, fsync=fsync)
    for n in range(50):
        s.offer(frame(n))
    s.sync()
    (log,) = s.logs()
    acknowledge(s, log, read_all(log))
    s.close()
    assert len(os.listdir("/proc/self/fd")) == before


def test_the_age_of_the_oldest_event_waiting(tmp_path: Path) -> None:
    s = spool(tmp_path)
    s.offer(encode_frame(b"key-1", b"old", time.time_ns() - 3_000_000_000))
    s.offer(frame(2))

    age = s.stats().oldest_age_s
    assert age is not None
    assert 3.0 <= age < 10.0
