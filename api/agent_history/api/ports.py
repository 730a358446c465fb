"""What the API is handed from outside rather than building itself: the erase, which writes.

The API's own sessions only read; the composition root (agent_history.server.bootstrap) hands
``create_app`` the projector's erase as an ``Eraser``.
"""

from __future__ import annotations

from collections.abc import Awaitable
from datetime import datetime
from typing import Protocol
from uuid import UUID


class ErasureResult(Protocol):
    """What an erase reports (the fields of ``schemas.Erasure``)."""

    @property
    def user_id(self) -> UUID: ...
    @property
    def erased_at(self) -> datetime: ...
    @property
    def first(self) -> bool: ...
    @property
    def executions(self) -> int: ...
    @property
    def names(self) -> int: ...
    @property
    def status_counts(self) -> int: ...
    @property
    def executions_removed(self) -> int: ...
    @property
    def dropped_events(self) -> int: ...


class Eraser(Protocol):
    def __call__(self, user_id: UUID, /) -> Awaitable[ErasureResult]:
        """Erase the user: record it, delete their rows; idempotent."""
        ...
