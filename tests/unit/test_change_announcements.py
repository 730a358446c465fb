"""The change announcements' format (read_model/changes.py): what fits NOTIFY, what it says."""

from __future__ import annotations

from uuid import UUID, uuid4

from agent_history.read_model.changes import (
    EVERYTHING,
    MAX_BODY_BYTES,
    MAX_PARTS,
    Announcement,
    decode_announcement,
    encode_changes,
)


def _heard(bodies: list[str]) -> list[Announcement]:
    return [decode_announcement(f"77.{n} {body}") for n, body in enumerate(bodies, 1)]


def test_ids_round_trip_in_parts_that_fit_notify() -> None:
    agents, me = [uuid4() for _ in range(7)], uuid4()
    rows = [(uuid4(), agents[i % 7], me if i % 2 else uuid4()) for i in range(1500)]
    bodies = encode_changes(rows)
    assert 1 < len(bodies) <= MAX_PARTS
    assert all(len(body.encode()) <= MAX_BODY_BYTES for body in bodies)
    heard = [decode_announcement(f"77.{n} {b}") for n, b in enumerate(bodies, 1)]
    assert [a.position for a in heard][:2] == ["77.1", "77.2"]
    every: set[UUID] = set()
    for announcement in heard:
        every |= announcement.ids_for(None, None) or set()
    assert every == {r[0] for r in rows}
    mine: set[UUID] = set()
    for announcement in heard:
        mine |= announcement.ids_for(agents[1], me) or set()
    assert mine == {r[0] for r in rows if r[1] == agents[1] and r[2] == me}


def test_too_many_ids_say_which_agents_and_users_then_anything() -> None:
    agent, user = uuid4(), uuid4()
    (body,) = encode_changes([(uuid4(), agent, user) for _ in range(20_000)])
    (heard,) = _heard([body])
    assert heard.ids_for(agent, None) is None  # changed, not saying which: reset
    assert heard.ids_for(uuid4(), None) == frozenset()  # another agent: nothing
    assert heard.ids_for(None, uuid4()) == frozenset()  # another user: nothing
    many = [(uuid4(), uuid4(), uuid4()) for _ in range(20_000)]
    assert encode_changes(many) == [EVERYTHING]
    (everything,) = _heard([EVERYTHING])
    assert everything.ids_for(agent, user) is None


def test_nothing_changed_announces_nothing() -> None:
    assert encode_changes([]) == []
