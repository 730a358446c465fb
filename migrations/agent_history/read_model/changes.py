"""What the read model's writers announce on commit: which executions a transaction changed.

Every transaction that changes agent_executions sends one PostgreSQL ``NOTIFY`` on ``CHANNEL``
(delivered to listeners only if, and when, it commits; in commit order). The payload is the
transaction's id (``pg_current_xact_id()``, unique and the same for every listener: the
position a stream resumes from) and a JSON body, coalesced per agent, then per user:

    {"<agent hex>": {"<user hex>": ["<execution hex>", ...], ...}, ...}

NOTIFY takes at most 8000 bytes, so when the ids do not fit the body says less, in steps: a
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
_HEX = 32 + 3  # a quoted hex id and its separator

# agent -> user -> execution ids; None where the ids (or the users) are not known.
Changed = Mapping[UUID, Mapping[UUID, frozenset[UUID] | None] | None]


def encode_changes(rows: Iterable[tuple[UUID, UUID, UUID]]) -> str:
    """The body announcing these (execution, agent, user) ids, as precise as fits."""
    listed = list(rows)
    if len(listed) * _HEX <= MAX_BODY_BYTES:
        by_agent: dict[UUID, dict[UUID, list[UUID]]] = {}
        for execution_id, agent_id, user_id in listed:
            by_agent.setdefault(agent_id, {}).setdefault(user_id, []).append(execution_id)
        size = sum(_HEX + 3 + (_HEX + 3) * len(users) for users in by_agent.values())
        if size + len(listed) * _HEX <= MAX_BODY_BYTES:
            body: dict[str, object] = {
                a.hex: {u.hex: [i.hex for i in ids] for u, ids in users.items()}
                for a, users in by_agent.items()
            }
            return json.dumps(body, separators=(",", ":"))
    # Too many ids (a backlog's big batches): who changed, without which runs.
    pairs = {(agent_id, user_id) for _, agent_id, user_id in listed}
    users_of: dict[UUID, list[UUID]] = {}
    for agent_id, user_id in pairs:
        users_of.setdefault(agent_id, []).append(user_id)
    if (_HEX + 3) * len(users_of) + (_HEX + 5) * len(pairs) <= MAX_BODY_BYTES:
        body = {a.hex: {u.hex: None for u in users} for a, users in users_of.items()}
    elif (_HEX + 5) * len(users_of) <= MAX_BODY_BYTES:
        body = {a.hex: None for a in users_of}
    else:
        return EVERYTHING
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
