"""Replay's loader processes: partitions dealt out, reports added up, a failure fails them all.

The bodies below stand in for a loader (they run in processes started by "spawn", which import
this module by name); the real one is exercised against Kafka and PostgreSQL in
tests/integration/test_replay.py.
"""

from __future__ import annotations

import multiprocessing
import os
import time

import pytest

from agent_history.projector.loader import Progress
from agent_history.projector.settings import ProjectorSettings
from agent_history.projector.shares import (
    LoaderFailed,
    Share,
    load_in_processes,
    shares_of,
)


def test_partitions_are_dealt_round_robin_with_their_offsets() -> None:
    until = {0: 10, 1: 11, 2: 12, 3: 13, 4: 14, 5: 15}
    assert shares_of(until, 2) == [{0: 10, 2: 12, 4: 14}, {1: 11, 3: 13, 5: 15}]
    assert shares_of(until, 4) == [{0: 10, 4: 14}, {1: 11, 5: 15}, {2: 12}, {3: 13}]
    assert shares_of(until, 1) == [until]


def test_no_loader_without_a_partition_and_zero_means_one_per_core() -> None:
    assert shares_of({0: 5, 1: 6}, 8) == [{0: 5}, {1: 6}]
    cores = os.cpu_count() or 1
    assert len(shares_of({p: 1 for p in range(64)}, 0)) == min(cores, 64)


def _shares(n: int) -> list[Share]:
    settings = ProjectorSettings()
    return [Share(settings, {i: 100}, frozenset(), "replay", 1000) for i in range(n)]


def reads_then_finishes(share: Share, progress: Progress) -> tuple[int, int, int]:
    n = next(iter(share.until)) + 1
    for events in (5, 10):
        progress(events * n, 0)
    return 12 * n, n - 1, 2 * (n - 1)


def fails_the_second(share: Share, progress: Progress) -> tuple[int, int, int]:
    if share.until == {1: 100}:
        raise ValueError(f"no way through partition {next(iter(share.until))}")
    time.sleep(60)  # stopped long before
    return 0, 0, 0


def dies(share: Share, progress: Progress) -> tuple[int, int, int]:
    os._exit(3)


async def test_what_the_loaders_report_adds_up() -> None:
    counted: list[tuple[int, int, int]] = []

    await load_in_processes(_shares(3), lambda *c: counted.append(c), reads_then_finishes)

    events = sum(c[0] for c in counted)
    assert events == 12 + 24 + 36, f"events counted: {counted}"
    assert sum(c[1] for c in counted) == 0 + 1 + 2
    assert sum(c[2] for c in counted) == 0 + 2 + 4
    assert all(min(c) >= 0 for c in counted), f"progress only moves forward: {counted}"
    assert not multiprocessing.active_children()


async def test_a_loader_that_raises_fails_the_load_and_the_others_are_stopped() -> None:
    start = time.monotonic()

    with pytest.raises(
        LoaderFailed,
        match=r"loader 1 \(partitions 1\) failed: ValueError: no way through partition 1",
    ):
        await load_in_processes(_shares(2), lambda *c: None, fails_the_second)

    assert time.monotonic() - start < 30, "the other loader was stopped, not waited for"
    assert not multiprocessing.active_children()


async def test_a_loader_that_exits_without_saying_it_is_done_fails_the_load() -> None:
    counted: list[tuple[int, int, int]] = []

    with pytest.raises(LoaderFailed, match=r"loader 0 \(partitions 0\) failed: exited with code 3"):
        await load_in_processes(_shares(1), lambda *c: counted.append(c), dies)

    assert counted == []
