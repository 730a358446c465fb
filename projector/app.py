"""Runs the projector until asked to stop: topics, dead letters, database, subscriber."""

from __future__ import annotations

import asyncio
import logging

from agent_history.db import make_engine
from agent_history.settings import ProjectorSettings
from agent_history.topics import ensure_topics
from projector.consumer import build_projector
from projector.deadletter import DeadLetters

log = logging.getLogger(__name__)


async def run_projector(
    settings: ProjectorSettings, stop: asyncio.Event, started: asyncio.Event | None = None
) -> None:
    """Project until ``stop`` is set; ``started`` is set once the subscriber runs."""
    await ensure_topics(settings)
    engine = make_engine(settings)
    dead_letters = DeadLetters(settings, settings.consumer_group)
    await dead_letters.start()
    broker, projector = build_projector(settings, engine, dead_letters)
    try:
        await broker.start()
        log.info(
            "projecting %s (group %s) into the database", settings.topic, settings.consumer_group
        )
        if started is not None:
            started.set()
        await stop.wait()
    finally:
        await broker.stop()
        await dead_letters.stop()
        await engine.dispose()
        log.info("projector stopped; %d records dead-lettered", projector.dead_lettered)
