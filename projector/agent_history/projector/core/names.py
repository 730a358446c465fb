"""Agents' and users' display names: the newest wins, by (event time, name). Pure; no I/O."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import TypeAlias
from uuid import UUID


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

# A batch's names as it folds them: keyed by UUID.int (UUID's own __hash__ and __eq__ are
# Python functions, called twice per event) to (id, name, time), a tuple instead of a Name
# per named event; made Names once per agent or user at the end of the batch (names_of).
Noted: TypeAlias = dict[int, tuple[UUID, str | None, datetime | None]]


def note_name(names: Noted, key: UUID, name: str | None, time: datetime) -> None:
    """Keep in ``names`` the newer of the name known for ``key`` and ``name`` as of ``time``."""
    k = key.int
    known = names.get(k)
    if name is None:
        if known is None:
            names[k] = (key, None, None)
        return
    if (  # Name.newer, without building a Name for every event
        known is None or known[1] is None or known[2] is None or (time, name) > (known[2], known[1])
    ):
        names[k] = (key, name, time)


def note_exists(names: Noted, key: UUID) -> None:
    """``key`` must exist, whatever its name: an event that names no one refers to it."""
    if key.int not in names:
        names[key.int] = (key, None, None)


def keep_newer(names: dict[UUID, Name], more: Mapping[UUID, Name]) -> None:
    """Keep in ``names`` the newer of its name and ``more``'s for each of ``more``'s keys."""
    for key, name in more.items():
        known = names.get(key)
        names[key] = name if known is None else known.newer(name)


def names_of(names: Noted) -> dict[UUID, Name]:
    return {
        key: NO_NAME if name is None else Name(name, time) for key, name, time in names.values()
    }


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
        keep_newer(self._known, names)

    def forget(self) -> None:
        self._known.clear()
