"""Runs the live projector until asked to stop: topics, dead letters, subscriber, retries."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from dataclasses import dataclass

from faststream.kafka import KafkaBroker

from agent_history.projector.consumer import Projector, retry_delay
from agent_history.projector.deadletter import DeadLetters
from agent_history.projector.pipeline import collecting_rarely
from agent_history.projector.settings import ProjectorSettings
from agent_history.projector.topics import ensure_topics

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Connection:
    """One attempt's Kafka clients, not started yet, and the projector they feed."""

    broker: KafkaBroker  # with the projector subscribed
    projector: Projector
    dead_letters: DeadLetters


async def run_projector(
    settings: ProjectorSettings,
    connect: Callable[[], Connection],
    stop: asyncio.Event,
    started: asyncio.Event | None = None,
) -> None:
    """Project until ``stop`` is set; ``started`` is set once the subscriber runs.

    ``connect`` builds fresh Kafka clients for each attempt: a broker that is not there yet
    is waited for, with backoff, and the projector comes up by itself once it is.
    """
    attempt = 0
    with collecting_rarely():
        while not stop.is_set():
            try:
                await _project(settings, connect, stop, started)
            except Exception as e:
                attempt += 1
                delay = retry_delay(attempt, settings.retry_max_seconds)
                log.warning("projector could not start (%s); retrying in %.1fs", e, delay)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), delay)


async def _project(
    settings: ProjectorSettings,
    connect: Callable[[], Connection],
    stop: asyncio.Event,
    started: asyncio.Event | None,
) -> None:
    await ensure_topics(settings)
    connection = connect()
    dead_letters, broker, projector = (
        connection.dead_letters,
        connection.broker,
        connection.projector,
    )
    await dead_letters.start()
    try:
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
