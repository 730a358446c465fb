"""Agents' and users' display names: the newest wins, by (event time, name). Pure; no I/O."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from uuid import UUID

from agent_history.contract.events import Event


@dataclass(frozen=True, slots=True)
class Name:
    """A display name for an agent or user, as of the time of the event that carried it."""

    name: str | None
    time: datetime | None

    def newer(self, other: Name) -> Name:
        if other.name is None or other.time is None:
            return self
        if self.name is None or self.time is None:
            return other
        return other if (other.time, other.name) > (self.time, self.name) else self


NO_NAME = Name(None, None)


def note_name(names: dict[UUID, Name], key: UUID, name: str | None, event: Event) -> None:
    """Keep in ``names`` the newer of the name known for ``key`` and the one ``event`` carries."""
    known = names.get(key)
    if name is None:
        if known is None:
            names[key] = NO_NAME
        return
    if (  # Name.newer, without building a Name for every event
        known is None
        or known.name is None
        or known.time is None
        or (event.time, name) > (known.time, known.name)
    ):
        names[key] = Name(name, event.time)


class StoredNames:
    """The agents (or users) this process has committed, each with the newest name it wrote.

    Lets a batch skip the upsert of references that could not change anything: the row exists
    and its name is at least as new. That stays true whoever else writes (the upsert only ever
    moves a name forward, and nothing deletes agents or users, replay included, but an
    erasure, after which no batch names that user again), except when a commit is lost: with
    synchronous_commit off (the projector's default) a database crash can lose the last
    commits. Callers therefore remember names only after the commit and forget everything on
    any failure or rewind.
    """

    def __init__(self, limit: int = 200_000) -> None:
        self._known: dict[UUID, Name] = {}
        self._limit = limit

    def unwritten(self, names: Mapping[UUID, Name]) -> dict[UUID, Name]:
        """The names that an upsert could still change."""
        known = self._known
        return {k: n for k, n in names.items() if k not in known or known[k].newer(n) is n}

    def remember(self, names: Mapping[UUID, Name]) -> None:
        """Note names just committed."""
        if len(self._known) + len(names) > self._limit:
            self._known.clear()
        known = self._known
        for key, name in names.items():
            known[key] = known[key].newer(name) if key in known else name

    def forget(self) -> None:
        self._known.clear()
