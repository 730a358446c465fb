"""Runs the projector until asked to stop: topics, dead letters, database, subscriber."""

from __future__ import annotations

import asyncio
import contextlib
import logging

from sqlalchemy.ext.asyncio import AsyncEngine

from agent_history.projector.consumer import build_projector, retry_delay
from agent_history.projector.deadletter import DeadLetters
from agent_history.projector.settings import ProjectorSettings
from agent_history.projector.topics import ensure_topics
from agent_history.read_model.db import make_engine

log = logging.getLogger(__name__)


async def run_projector(
    settings: ProjectorSettings, stop: asyncio.Event, started: asyncio.Event | None = None
) -> None:
    """Project until ``stop`` is set; ``started`` is set once the subscriber runs.

    A broker that is not there yet is waited for, with backoff: the projector comes up by
    itself once it is.
    """
    engine = make_engine(settings)
    attempt = 0
    try:
        while not stop.is_set():
            try:
                await _project(settings, engine, stop, started)
            except Exception as e:
                attempt += 1
                delay = retry_delay(attempt, settings.retry_max_seconds)
                log.warning("projector could not start (%s); retrying in %.1fs", e, delay)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), delay)
    finally:
        await engine.dispose()


async def _project(
    settings: ProjectorSettings,
    engine: AsyncEngine,
    stop: asyncio.Event,
    started: asyncio.Event | None,
) -> None:
    await ensure_topics(settings)
    dead_letters = DeadLetters(settings, settings.consumer_group)
    await dead_letters.start()
    try:
        broker, projector = build_projector(settings, engine, dead_letters)
        try:
            await broker.start()
            log.info(
                "projecting %s (group %s) into the database",
                settings.topic,
                settings.consumer_group,
            )
            if started is not None:
                started.set()
            await stop.wait()
        finally:
            await broker.stop()
            # The batch in flight commits rather than being redone from the checkpoint.
            await projector.settle()
            log.info("projector stopped; %d records dead-lettered", projector.dead_lettered)
    finally:
        await dead_letters.stop()
