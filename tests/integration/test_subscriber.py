"""The live subscriber hands each batch to the projector in a context of its own.

FastStream keeps the message being handled in a context variable. Every task and timer that
the handler starts copies the context, and asyncio keeps a timer's copy until the timer is due,
even once cancelled: so a batch handled in FastStream's context stayed alive as long as the
timeouts its write started (Kafka requests': 40 s), and the live projector's memory grew with
the backlog (issue 13).
"""

from __future__ import annotations

import asyncio
import contextvars
from collections.abc import Sequence
from typing import Any, cast

import pytest
from aiokafka import TopicPartition
from faststream.message import StreamMessage

from agent_history.projector.consumer import Projector
from agent_history.projector.core.decode import Record
from agent_history.projector.ports import Consumer
from agent_history.projector.settings import ProjectorSettings
from agent_history.projector.subscriber import subscribe

pytestmark = pytest.mark.integration


class _ContextSpy:
    """Stands in for the Projector: notes what the context holds while a batch is handled."""

    def __init__(self) -> None:
        self.handled = asyncio.Event()
        self.records = 0
        self.context_values: list[object] = []

    async def handle(self, records: Sequence[Record], consumer: Consumer) -> None:
        self.records += len(records)
        self.context_values = list(contextvars.copy_context().values())
        self.handled.set()

    async def settle(self) -> None:
        return None

    async def seek_to_checkpoints(self, consumer: Consumer, assigned: set[TopicPartition]) -> None:
        return None


async def test_a_batch_is_handled_without_the_message_in_its_context(
    projector_settings: ProjectorSettings, producer: Any
) -> None:
    spy = _ContextSpy()
    broker = subscribe(projector_settings, cast(Projector, spy))
    await producer.send_and_wait(projector_settings.topic, b"{}", key=b"k", partition=0)
    await broker.start()
    try:
        await asyncio.wait_for(spy.handled.wait(), 60)
    finally:
        await broker.stop()
    assert spy.records == 1
    held = [type(v).__name__ for v in spy.context_values if isinstance(v, StreamMessage)]
    assert not held, f"the handler's context holds the message ({held}); it must hold none"
