"""The pipeline shared by the projector and replay: one write in flight, in order."""

from __future__ import annotations

import asyncio
import gc

import pytest

from agent_history.projector.pipeline import Pipeline, collecting_rarely


async def test_start_returns_once_the_write_is_writing_and_finish_gives_its_result() -> None:
    steps: list[str] = []
    release = asyncio.Event()

    async def write(writing: asyncio.Event) -> int:
        steps.append("sent")
        writing.set()
        await release.wait()
        steps.append("committed")
        return 7

    pipeline = Pipeline[int]()
    await pipeline.start(write)
    assert steps == ["sent"], "start returns while the write still runs"
    assert pipeline.busy
    with pytest.raises(RuntimeError, match="finish the write in flight first"):
        await pipeline.start(write)
    release.set()
    assert await pipeline.finish() == 7
    assert steps == ["sent", "committed"]
    assert not pipeline.busy


async def test_a_write_that_fails_before_writing_returns_from_start_and_raises_in_finish() -> None:
    async def write(writing: asyncio.Event) -> int:
        raise OSError("database down")

    pipeline = Pipeline[int]()
    await pipeline.start(write)
    await pipeline.settle()
    with pytest.raises(OSError, match="database down"):
        await pipeline.finish()
    assert not pipeline.busy


def test_collecting_rarely_restores_the_thresholds() -> None:
    before = gc.get_threshold()
    gc.set_threshold(700, 10, 10)
    try:
        with collecting_rarely():
            assert gc.get_threshold()[0] > 700
        assert gc.get_threshold() == (700, 10, 10)
    finally:
        gc.set_threshold(*before)
