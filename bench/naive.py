"""The naive projector: each event applied on its own, ORM load / modify / commit.

What a first attempt looks like (and what the seed task's example did): parse the event, load
the execution, its agent and its user through the SQLAlchemy ORM, change them in Python with
the same fold, and commit, one transaction per event. It gets the records handed to it (no
Kafka consumption), so its rate is an upper bound for such a projector.
"""

from __future__ import annotations

import time
from dataclasses import fields
from datetime import datetime
from typing import Any
from uuid import UUID

from sqlalchemy.ext.asyncio import AsyncSession, create_async_engine
from sqlalchemy.orm import registry

from agent_history.contract.events import RunRequestData, parse_event
from agent_history.projector.core.fold import Execution, from_event, merge
from agent_history.read_model.tables import agent_executions, agents, users


class _Named:
    id: UUID
    name: str | None
    name_time: datetime | None

    def __init__(self, **values: Any) -> None:
        for key, value in values.items():
            setattr(self, key, value)


class _Agent(_Named):
    pass


class _User(_Named):
    pass


class _Row:
    def __init__(self, **values: Any) -> None:
        for key, value in values.items():
            setattr(self, key, value)


_mapper = registry()
_mapper.map_imperatively(_Agent, agents)
_mapper.map_imperatively(_User, users)
_mapper.map_imperatively(_Row, agent_executions)
_FIELDS = [f.name for f in fields(Execution)]


def _as_execution(row: _Row) -> Execution:
    return Execution(**{name: getattr(row, name) for name in _FIELDS})


async def project_naively(
    database_url: str, values: list[bytes], budget: float
) -> tuple[int, float]:
    """Apply events one by one until done or ``budget`` seconds pass: (events, seconds)."""
    engine = create_async_engine(database_url)
    applied = 0
    try:
        async with AsyncSession(engine) as session:
            start = time.perf_counter()
            for value in values:
                await _apply(session, value)
                applied += 1
                if time.perf_counter() - start > budget:
                    break
            return applied, time.perf_counter() - start
    finally:
        await engine.dispose()


async def _apply(session: AsyncSession, value: bytes) -> None:
    event = parse_event(value)
    data = event.data
    named = isinstance(data, RunRequestData)
    for cls, key, name in (
        (_Agent, data.agent_id, data.agent_name if isinstance(data, RunRequestData) else None),
        (_User, data.user_id, data.user_name if isinstance(data, RunRequestData) else None),
    ):
        ref = await session.get(cls, key)
        stamp = event.time if named and name is not None else None
        if ref is None:
            session.add(cls(id=key, name=name, name_time=stamp))
        elif (
            name is not None
            and stamp is not None
            and (ref.name_time is None or (stamp, name) > (ref.name_time, ref.name or ""))
        ):
            ref.name, ref.name_time = name, stamp
        await session.flush()  # the row the execution refers to exists before it
    row = await session.get(_Row, data.execution_id)
    new = from_event(event)
    if row is None:
        session.add(_Row(**{name: getattr(new, name) for name in _FIELDS}))
    else:
        merged = merge(_as_execution(row), new)
        for name in _FIELDS:
            setattr(row, name, getattr(merged, name))
    await session.commit()
