"""What the read model's writers announce on commit: which executions a transaction changed.

Every transaction that changes agent_executions sends one PostgreSQL ``NOTIFY`` on ``CHANNEL``
(delivered to listeners only if, and when, it commits; in commit order). The payload is a
position (the transaction's id, ``pg_current_xact_id()``, and the part's number: unique, and the
same for every listener: what a stream resumes from) and a JSON body, coalesced per agent, then
per user:

    {"<agent hex>": {"<user hex>": ["<execution hex>", ...], ...}, ...}

NOTIFY takes at most 8000 bytes: a transaction sends its ids in as many parts as they need, up
to MAX_PARTS; beyond (a backlog's big batches), one body says less, in steps: a
user's ids become ``null`` ("this user's runs of this agent changed"), then an agent's users
(``"<agent hex>": null``: "this agent's runs changed"), then the whole body (``null``:
"anything may have changed", which replay, prune and erase always send). A listener that cannot
tell exactly what changed for it reloads.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from uuid import UUID

CHANNEL = "agent_history_changes"
# NOTIFY's limit is 8000 bytes; the transaction id and a space come first.
MAX_BODY_BYTES = 7900
# An entry's most characters: a quoted hex id, a separator, and an agent's or user's brackets.
_ENTRY = 38
# Announcements of one transaction at most; each has its own position (the transaction id and
# its number), and all of them reach a listener together, at the commit.
MAX_PARTS = 32

# agent -> user -> execution ids; None where the ids (or the users) are not known.
Changed = Mapping[UUID, Mapping[UUID, frozenset[UUID] | None] | None]


def encode_changes(rows: Iterable[tuple[UUID, UUID, UUID]]) -> list[str]:
    """The bodies announcing these (execution, agent, user) ids: as many as the ids need (one
    NOTIFY each, at most MAX_PARTS), else one that says less."""
    listed = list(rows)
    if len(listed) <= MAX_PARTS * (MAX_BODY_BYTES // (3 * _ENTRY)):
        parts: list[dict[UUID, dict[UUID, list[UUID]]]] = [{}]
        size = 2
        for execution_id, agent_id, user_id in listed:
            part = parts[-1]
            users = part.get(agent_id)
            grows = _ENTRY + (0 if users is not None else _ENTRY)
            grows += 0 if users is not None and user_id in users else _ENTRY
            if size + grows > MAX_BODY_BYTES:
                parts.append(part := {})
                size, users, grows = 2, None, 3 * _ENTRY
            if users is None:
                users = part[agent_id] = {}
            users.setdefault(user_id, []).append(execution_id)
            size += grows
        if len(parts) <= MAX_PARTS:
            return [_dumps(_precise(part)) for part in parts if part]
    # Too many ids (a backlog's big batches): who changed, without which runs.
    pairs = {(agent_id, user_id) for _, agent_id, user_id in listed}
    users_of: dict[UUID, list[UUID]] = {}
    for agent_id, user_id in pairs:
        users_of.setdefault(agent_id, []).append(user_id)
    if (_ENTRY + 3) * (len(users_of) + len(pairs)) <= MAX_BODY_BYTES:
        return [_dumps({a.hex: {u.hex: None for u in users} for a, users in users_of.items()})]
    if (_ENTRY + 3) * len(users_of) <= MAX_BODY_BYTES:
        return [_dumps({a.hex: None for a in users_of})]
    return [EVERYTHING]


def _precise(part: dict[UUID, dict[UUID, list[UUID]]]) -> dict[str, object]:
    return {
        a.hex: {u.hex: [i.hex for i in ids] for u, ids in users.items()}
        for a, users in part.items()
    }


def _dumps(body: object) -> str:
    return json.dumps(body, separators=(",", ":"))


# The body that tells listeners anything may have changed.
EVERYTHING = "null"


@dataclass(frozen=True, slots=True)
class Announcement:
    """One committed transaction's announcement, as a listener received it."""

    # The transaction id: the position a stream reports and resumes from.
    position: str
    # None: anything may have changed.
    changed: Changed | None

    def ids_for(self, agent_id: UUID | None, user_id: UUID | None) -> frozenset[UUID] | None:
        """The changed executions that a list of this agent and/or user may show; None when
        the announcement cannot say which."""
        if self.changed is None:
            return None
        if agent_id is not None:
            picked = self.changed.get(agent_id, {})
            agents: Iterable[Mapping[UUID, frozenset[UUID] | None] | None] = (picked,)
        else:
            agents = self.changed.values()
        found: set[UUID] = set()
        for users in agents:
            if users is None:
                return None
            for ids in (users.get(user_id, frozenset()),) if user_id else users.values():
                if ids is None:
                    return None
                found.update(ids)
        return frozenset(found)

    def touches(self) -> tuple[frozenset[UUID], frozenset[UUID], bool]:
        """The agents and users named, and whether some changed runs' users are unnamed."""
        if self.changed is None:
            return frozenset(), frozenset(), True
        users: set[UUID] = set()
        unnamed = False
        for by_user in self.changed.values():
            if by_user is None:
                unnamed = True
            else:
                users.update(by_user)
        return frozenset(self.changed), frozenset(users), unnamed

    @property
    def size(self) -> int:
        """How many ids it holds, to bound what a listener keeps."""
        if self.changed is None:
            return 1
        return sum(
            1 + sum(1 + len(ids or ()) for ids in (users or {}).values())
            for users in self.changed.values()
        )


def decode_announcement(payload: str) -> Announcement:
    """An announcement from a NOTIFY payload; ValueError when it is not one."""
    position, _, text = payload.partition(" ")
    if not position or not text:
        raise ValueError(f"not an announcement: {payload[:80]!r}")
    body = json.loads(text)
    if body is None:
        return Announcement(position, None)
    changed: dict[UUID, dict[UUID, frozenset[UUID] | None] | None] = {}
    for agent, users in body.items():
        if users is None:
            changed[UUID(agent)] = None
            continue
        changed[UUID(agent)] = {
            UUID(user): None if ids is None else frozenset(UUID(i) for i in ids)
            for user, ids in users.items()
        }
    return Announcement(position, changed)
