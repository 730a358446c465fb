"""The shortcuts that make a batch cheap must not change what it means: a redelivered record
is folded once but dead-lettered every time, and a name is skipped only when the stored one is
at least as new."""

from __future__ import annotations

import math
import re
from datetime import UTC, datetime, timedelta
from uuid import UUID, uuid4

from hypothesis import example, given
from hypothesis import strategies as st
from pydantic import JsonValue, TypeAdapter

from agent_history.projector.core.changes import changes_of
from agent_history.projector.core.decode import suspect
from agent_history.projector.core.names import Name, StoredNames
from agent_history.projector.core.wire import decode_sure
from tests.unit.projector.core.test_batch import FakeRecord, binary, raw, record, wire

T0 = datetime(2024, 5, 1, tzinfo=UTC)


def test_a_duplicate_record_changes_nothing_but_is_dead_lettered_again_if_poison() -> None:
    started, ended = wire("ExecutionStarted", agent_name="A"), wire("ExecutionCompleted")
    ended["data"]["execution_id"] = ended["subject"] = started["subject"]
    poison = FakeRecord(b"{not json", offset=7)
    records = [record(started), record(ended), poison, record(started), poison]

    once = changes_of([record(started), record(ended)], 1 << 20)
    twice = changes_of(records, 1 << 20)

    assert (twice.rows, twice.agents, twice.users) == (once.rows, once.agents, once.users)
    assert [p.record for p in twice.poison] == [poison, poison]


def test_the_same_bytes_under_another_key_are_judged_on_their_own() -> None:
    value = wire("ExecutionStarted")
    good = record(value)
    wrong_key = FakeRecord(raw(value), key=str(uuid4()).encode())

    changes = changes_of([good, wrong_key], 1 << 20)

    assert [p.record for p in changes.poison] == [wrong_key]
    assert len(changes.rows) == 1


def test_the_same_data_under_other_attributes_is_judged_on_its_own() -> None:
    """In binary mode the value is only the data: two events may share it, the headers differ."""
    started = wire("ExecutionStarted")
    ended = wire("ExecutionCancelled") | {"subject": started["subject"], "data": started["data"]}
    # Byte for byte the same data: Cancelled ignores the input_data it does not know.
    key, value = record(started).key, raw(started["data"])
    records = [FakeRecord(value, key, headers=binary(v).headers) for v in (started, ended)]

    changes = changes_of(records, 1 << 20)

    assert not changes.poison
    assert changes.rows[UUID(started["subject"])].status == "cancelled"


def test_stored_names_skip_only_what_could_not_change_the_row() -> None:
    agent, other = uuid4(), uuid4()
    stored = StoredNames()
    stored.remember({agent: Name("Scout", T0)})

    older = Name("Old", T0 - timedelta(seconds=1))
    newer = Name("New", T0 + timedelta(seconds=1))
    same_time_greater = Name("Zed", T0)
    unnamed = Name(None, None)
    batch = {agent: unnamed, other: unnamed}

    assert stored.unwritten(batch) == {other: unnamed}, "an unknown id is always written"
    assert stored.unwritten({agent: older}) == {}
    assert stored.unwritten({agent: Name("Scout", T0)}) == {}
    assert stored.unwritten({agent: newer}) == {agent: newer}
    assert stored.unwritten({agent: same_time_greater}) == {agent: same_time_greater}

    stored.forget()
    assert stored.unwritten({agent: older}) == {agent: older}


def test_stored_names_only_move_forward_and_stay_bounded() -> None:
    agent = uuid4()
    stored = StoredNames(limit=2)
    stored.remember({agent: Name("New", T0)})
    stored.remember({agent: Name("Old", T0 - timedelta(days=1))})

    assert stored.unwritten({agent: Name("Mid", T0 - timedelta(hours=1))}) == {}

    stored.remember({uuid4(): Name(None, None), uuid4(): Name(None, None)})
    assert stored.unwritten({agent: Name("Mid", T0 - timedelta(hours=1))}) != {}, (
        "over the limit, everything is forgotten rather than growing without end"
    )


_SCAN = re.compile(
    rb"\\u0000|NaN|Infinity|[0-9][eE][+]?[0-9]{3,}([,}\] \t\n\r]|$)"
    rb"|[0-9]{200}"
)
_DIGIT_RUNS = st.lists(st.integers(190, 210), max_size=3).map(
    lambda runs: b".".join(b"7" * n for n in runs)
)


@given(
    st.binary(max_size=40)
    | st.text("0123456789eE+-x\\u0NaInfity,}] ", max_size=40).map(str.encode)
    | _DIGIT_RUNS
)
def test_the_byte_scan_flags_what_its_regular_expression_matches_and_little_more(
    value: bytes,
) -> None:
    if _SCAN.search(value) is not None:
        assert suspect(value)
    if suspect(value):  # deleting "+" joins digits: "1e+2+34" is flagged as "1e234" would be
        assert _SCAN.search(value.replace(b"+", b"")) is not None


@st.composite
def _numbers(draw: st.DrawFn) -> bytes:
    """JSON numbers of up to 320 integer digits, a fraction and an exponent of up to 5 digits."""
    digits = st.text("0123456789", min_size=1, max_size=draw(st.sampled_from([3, 30, 320])))
    whole = draw(digits).lstrip("0") or "0"
    fraction = draw(st.none() | digits)
    exponent = draw(st.none() | st.tuples(st.sampled_from(["e", "E+", "e-"]), digits))
    number = whole + ("" if fraction is None else "." + fraction)
    if exponent is not None:
        number += exponent[0] + exponent[1][:5]
    return number.encode()


@given(_numbers(), st.sampled_from([b"}", b', "m": 1}', b" }", b"]}", b"\n}"]))
@example(b"2" + b"0" * 308 + b".5", b"}")  # past the largest float without an exponent
@example(b"2" + b"0" * 250 + b"e60", b"}")  # ... or with a two-digit one
def test_the_byte_scan_flags_every_number_past_the_largest_float(
    number: bytes, after: bytes
) -> None:
    value = (b'{"n": [' if after.startswith(b"]") else b'{"n": ') + number + after
    parsed = TypeAdapter(JsonValue).validate_json(value)
    assert isinstance(parsed, dict)
    n = parsed["n"][0] if isinstance(parsed["n"], list) else parsed["n"]
    if isinstance(n, float) and not math.isfinite(n):
        assert suspect(value), value


@given(_numbers(), st.sampled_from(["input_data", "metadata"]))
@example(b"2" + b"0" * 308 + b".5", "input_data")
@example(b"1e400", "metadata")
def test_the_hot_paths_decoder_takes_no_number_past_the_largest_float(
    number: bytes, field: str
) -> None:
    """Why decode.py scans msgspec's events for a NUL alone: msgspec refuses such a number
    anywhere in an event, so the contract decodes it (and the scan above flags it)."""
    event = wire("ExecutionStarted")
    event["data"][field] = {"n": "NUMBER"}
    value = raw(event).replace(b'"NUMBER"', number)
    n = TypeAdapter(JsonValue).validate_json(number)
    if isinstance(n, float) and not math.isfinite(n):
        assert decode_sure(value) is None, value
    elif re.search(rb"\.[0-9]{7}", number) is None:
        # The control: any other number is msgspec's to read (seven fraction digits or more
        # are not, wire.py).
        assert decode_sure(value) is not None, value
