"""Replay's loaders in processes of their own, each over its share of the topic's partitions.

Decoding and folding a backlog is CPU work in Python, one core per process, while PostgreSQL
mostly waits for it (docs/benchmarks.md). Records are keyed by execution id, so loaders over
disjoint partitions write disjoint rows of the shadow's agent_executions; the agents and users
rows they both upsert are locked in one order (store.py), so they may wait for each other but
never deadlock. Each process builds its own consumer and engine from the settings (started by
"spawn": nothing of this process's event loop, connections or Kafka clients is inherited) and
reports through a queue. A process that fails, or exits without saying it is done, fails the
load and the others are stopped: replay swaps only after every share is in.
"""

from __future__ import annotations

import asyncio
import multiprocessing
import os
import queue
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from multiprocessing.process import BaseProcess
from multiprocessing.queues import Queue
from uuid import UUID

from agent_history.projector.allocator import map_big_blocks
from agent_history.projector.loader import Loader, Progress, read_from_start, replay_consumer
from agent_history.projector.pipeline import collecting_rarely
from agent_history.projector.settings import ProjectorSettings
from agent_history.read_model.db import make_engine

# How often a process waiting for reports looks whether a loader died without a word.
_LOOK_SECONDS = 0.2


class LoaderFailed(RuntimeError):
    pass


@dataclass(frozen=True, slots=True)
class Share:
    """One loader's work: its partitions, each read from its start up to its offset in ``until``,
    folded into ``schema``'s tables."""

    settings: ProjectorSettings
    until: dict[int, int]
    erased: frozenset[UUID]
    schema: str
    batch_records: int


@dataclass(frozen=True, slots=True)
class Read:
    loader: int
    events: int  # so far


@dataclass(frozen=True, slots=True)
class Done:
    loader: int
    events: int
    invalid: int
    dropped: int


@dataclass(frozen=True, slots=True)
class Failed:
    loader: int
    reason: str


Report = Read | Done | Failed
# A loader process's work: (share, progress) -> (events, invalid, dropped).
Body = Callable[[Share, Progress], tuple[int, int, int]]


def shares_of(until: dict[int, int], workers: int) -> list[dict[int, int]]:
    """The partitions (with their offsets) dealt round-robin to ``workers`` loaders (0: one per
    core), no loader without a partition."""
    n = workers or os.cpu_count() or 1
    partitions = sorted(until)
    return [{p: until[p] for p in partitions[i::n]} for i in range(min(n, len(partitions)))]


def load_share(share: Share, progress: Progress) -> tuple[int, int, int]:
    """Fold the share into its schema's tables, as replay's own loader would."""
    map_big_blocks()  # a process of its own, as `agent-history replay` (cli.py)
    loader = asyncio.run(_load(share, progress))
    return loader.events, loader.invalid, loader.dropped


def _run(body: Body, share: Share, index: int, reports: Queue[Report]) -> None:
    """A loader process: do the work, reporting progress as it goes, then the outcome."""

    def progress(events: int, _total: int) -> None:
        reports.put(Read(index, events))

    try:
        events, invalid, dropped = body(share, progress)
    except BaseException as e:
        reports.put(Failed(index, f"{type(e).__name__}: {e}"))
        raise  # its traceback goes to this process's stderr
    reports.put(Done(index, events, invalid, dropped))


async def _load(share: Share, progress: Progress) -> Loader:
    settings = share.settings
    engine = make_engine(settings)
    consumer = replay_consumer(settings)
    try:
        await consumer.start()
        await read_from_start(consumer, settings.topic, share.until)
        loader = Loader(settings, consumer, share.schema, progress, 0, share.batch_records)
        loader.erased = share.erased
        with collecting_rarely():
            await loader.load(engine, share.until)
        return loader
    finally:
        await consumer.stop()
        await engine.dispose()


async def load_in_processes(
    shares: Sequence[Share], count: Callable[[int, int, int], None], body: Body = load_share
) -> None:
    """A loader process per share, until every one is done; ``count`` gets the events, invalid
    events and dropped events they report as they go (``Loader.count``)."""
    context = multiprocessing.get_context("spawn")
    reports: Queue[Report] = context.Queue()
    processes = [
        context.Process(target=_run, args=(body, share, i, reports), name=f"replay-loader-{i}")
        for i, share in enumerate(shares)
    ]
    read = [0] * len(shares)
    left = set(range(len(shares)))
    try:
        for process in processes:
            process.start()
        while left:
            match await asyncio.to_thread(_next_report, reports, processes, left):
                case Read(i, events):
                    count(events - read[i], 0, 0)
                    read[i] = events
                case Done(i, events, invalid, dropped):
                    count(events - read[i], invalid, dropped)
                    left.discard(i)
                case Failed(i, reason):
                    partitions = ", ".join(map(str, shares[i].until))
                    raise LoaderFailed(
                        f"replay's loader {i} (partitions {partitions}) failed: {reason}"
                    )
    finally:
        for process in processes:
            if process.is_alive():
                process.terminate()
        for process in processes:
            if process.pid is not None:
                await asyncio.to_thread(process.join)
        reports.close()


def _next_report(
    reports: Queue[Report], processes: Sequence[BaseProcess], left: set[int]
) -> Report:
    """The next report; a Failed one for a loader that exited without saying it is done."""
    while True:
        try:
            return reports.get(timeout=_LOOK_SECONDS)
        except queue.Empty:
            pass
        for i in sorted(left):
            if (code := processes[i].exitcode) is not None:
                # Its last reports reached the queue before it exited: one more look.
                try:
                    return reports.get(timeout=_LOOK_SECONDS)
                except queue.Empty:
                    return Failed(i, f"exited with code {code} before it was done")
