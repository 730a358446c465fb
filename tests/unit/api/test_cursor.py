"""Signed keyset cursors: round trips, and every way a cursor can be wrong is a 400."""

from __future__ import annotations

import base64
import string
from datetime import UTC, datetime, timedelta, timezone
from uuid import UUID, uuid4

import pytest
from hypothesis import given
from hypothesis import strategies as st

from agent_history.api.cursor import CursorCodec, InvalidCursor, Position, cursor_key, fingerprint
from agent_history.api.problems import invalid_cursor
from agent_history.api.settings import ApiSettings

CODEC = CursorCodec(b"k" * 32)
QUERY = fingerprint({"agent_id": "a", "order": "desc"})
URL_SAFE = string.ascii_letters + string.digits + "-_"
POSITION = Position(datetime(2025, 1, 15, 10, 30, 0, 123456, tzinfo=UTC), uuid4())


def _rejected(cursor: str, query: bytes = QUERY, codec: CursorCodec = CODEC) -> str:
    with pytest.raises(InvalidCursor) as caught:
        codec.decode(cursor, query)
    problem = invalid_cursor(caught.value)
    assert (problem.status, problem.type) == (400, "urn:agent-history:problem:invalid-cursor")
    return problem.detail


@given(
    start=st.datetimes(timezones=st.just(UTC)),
    execution_id=st.uuids(),
)
def test_a_cursor_round_trips_any_position(start: datetime, execution_id: UUID) -> None:
    position = Position(start, execution_id)
    cursor = CODEC.encode(position, QUERY)
    assert CODEC.decode(cursor, QUERY) == position
    assert set(cursor) <= set(URL_SAFE)
    assert len(cursor) < 80


def test_positions_in_other_offsets_decode_to_the_same_instant() -> None:
    local = POSITION.execution_start.astimezone(timezone(timedelta(hours=5)))
    decoded = CODEC.decode(CODEC.encode(Position(local, POSITION.id), QUERY), QUERY)
    assert decoded.execution_start == POSITION.execution_start


def test_a_cursor_of_another_query_is_refused() -> None:
    cursor = CODEC.encode(POSITION, QUERY)
    other = fingerprint({"agent_id": "a", "order": "asc"})
    assert "different query" in _rejected(cursor, other)


def test_a_cursor_signed_with_another_key_is_refused() -> None:
    cursor = CursorCodec(b"x" * 32).encode(POSITION, QUERY)
    assert "not one this API issued" in _rejected(cursor)


@given(index=st.integers(min_value=0), flip=st.integers(min_value=1, max_value=255))
def test_any_changed_byte_is_refused(index: int, flip: int) -> None:
    raw = bytearray(base64.urlsafe_b64decode(CODEC.encode(POSITION, QUERY) + "=="))
    raw[index % len(raw)] ^= flip
    _rejected(base64.urlsafe_b64encode(bytes(raw)).rstrip(b"=").decode())


@given(text=st.text(max_size=120))
def test_arbitrary_text_is_refused_never_raised_otherwise(text: str) -> None:
    _rejected(text)


def test_fingerprints_ignore_key_order_but_not_values() -> None:
    assert fingerprint({"a": 1, "b": [2]}) == fingerprint({"b": [2], "a": 1})
    assert fingerprint({"a": 1}) != fingerprint({"a": 2})


def test_the_cursor_key_is_its_own_secret_or_derived_from_the_jwt_secret() -> None:
    derived = cursor_key(ApiSettings())
    assert derived != ApiSettings().jwt_secret.get_secret_value().encode()
    own = ApiSettings(cursor_secret="c" * 32)
    assert cursor_key(own) == b"c" * 32
    other = ApiSettings(jwt_secret="j" * 32)
    assert cursor_key(other) != derived
