"""Overlap the database with this process: one batch is written while the next is decoded.

Shared by the live projector (consumer.py) and replay (loader.py): both read a backlog, decode
and fold each batch in Python, then have PostgreSQL merge it. Run one after the other, each
side waits for the other; pipelined, PostgreSQL runs a batch's big statement while this
process fetches and decodes the next batch. Writes still run one at a time, in order.
"""

from __future__ import annotations

import asyncio
import gc
from collections.abc import Callable, Coroutine, Iterator
from contextlib import contextmanager
from typing import Any, Generic, TypeVar

T = TypeVar("T")

# A batch allocates objects by the hundred thousand (records, events, rows), hardly any in
# reference cycles, and keeps a batch or two of them alive. With Python's default thresholds
# (a collection every 700 allocations) the cyclic collector keeps rescanning them, which costs
# the projector a large share of its CPU time on a backlog (docs/benchmarks.md) and frees
# nothing. Rarer collections, same safety: a young collection every million allocations, every
# few batches. (Pausing the collector while a batch is decoded would leave the rest of a
# batch's work, fetching and writing, to the default thresholds.)
_COLLECTOR_THRESHOLDS = (1_000_000, 20, 10)


@contextmanager
def collecting_rarely() -> Iterator[None]:
    """The garbage-collector thresholds for batch work (see above), then the process's own."""
    before = gc.get_threshold()
    gc.set_threshold(*_COLLECTOR_THRESHOLDS)
    try:
        yield
    finally:
        gc.set_threshold(*before)


# A write: given an event to set once its big statement is on its way, the coroutine that
# writes (and commits) one batch.
Write = Callable[[asyncio.Event], Coroutine[Any, Any, T]]


class Pipeline(Generic[T]):
    """At most one write in flight; ``start`` returns while it runs, ``finish`` awaits it."""

    def __init__(self) -> None:
        self._in_flight: asyncio.Task[T] | None = None

    @property
    def busy(self) -> bool:
        return self._in_flight is not None

    @property
    def writing(self) -> bool:
        """Whether a write is in flight and not done yet (``busy`` until ``finish``)."""
        return self._in_flight is not None and not self._in_flight.done()

    async def start(self, write: Write[T]) -> None:
        """Start ``write`` (after ``finish``); return once it is writing, or done."""
        if self._in_flight is not None:
            raise RuntimeError("finish the write in flight first: writes run in order")
        writing = asyncio.Event()
        task = asyncio.create_task(write(writing))
        self._in_flight = task
        waiter = asyncio.create_task(writing.wait())
        await asyncio.wait([task, waiter], return_when=asyncio.FIRST_COMPLETED)
        waiter.cancel()

    async def finish(self) -> T:
        """The result of the write in flight (its exception, if it raised); none is left.

        The write stays in flight until it is done, so ``settle`` meanwhile (a revocation)
        waits for it too; cancelling this wait leaves the write running."""
        task = self._in_flight
        if task is None:
            raise RuntimeError("no write in flight")
        await asyncio.wait([task])
        if self._in_flight is task:
            self._in_flight = None
        return task.result()

    async def settle(self) -> None:
        """Wait until the write in flight is done, whatever its outcome; keep its result."""
        if self._in_flight is not None:
            await asyncio.wait([self._in_flight])
