"""The hot path's decoder (msgspec's mirror of the contract) against the contract's own.

For any record, ``decode_hot`` must give the verdict ``decode`` gives: the same poison reason,
or an event that folds to the same row, names the same agent and user and carries the same
trace context. The records are events generated from the contract's fields, then mutated:
wrong types, missing and extra fields, times in other shapes, huge numbers, NUL and surrogate
escapes, duplicate keys, bytes that are not UTF-8, deep nesting.
"""

from __future__ import annotations

import dataclasses
import json
from datetime import datetime
from decimal import Decimal
from typing import Any, get_args
from uuid import UUID

from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from pydantic import BaseModel

from agent_history.contract.events import EventType
from agent_history.projector.core import wire as mirror
from agent_history.projector.core.changes import changes_of
from agent_history.projector.core.decode import AnyEvent, Poison, decode, decode_hot
from agent_history.projector.core.fold import Execution, fold, fold_all
from tests.unit.projector.core.test_batch import FakeRecord

MAX_BYTES = 1 << 20
TYPES = get_args(EventType)
IDS = [
    "0b5a2c1e-4f6d-4e8a-9b7c-1d2e3f405162",
    "d3c1e7a0-1234-4abc-8def-0123456789ab",
    "ffffffff-ffff-ffff-ffff-ffffffffffff",
]


class Raw:
    """JSON text put into a value as it is (a number json.dumps cannot write, bad bytes...)."""

    def __init__(self, text: bytes) -> None:
        self.text = text


def uuids() -> st.SearchStrategy[Any]:
    known = st.sampled_from(IDS)
    return st.one_of(
        known,
        known,
        known.map(str.upper),
        known.map(lambda u: u.replace("-", "")),
        known.map(lambda u: "{" + u + "}"),
        known.map(lambda u: "urn:uuid:" + u),
        known.map(lambda u: u[:-1]),
        st.uuids().map(str),
        st.integers(0, 9),
        st.none(),
    )


def times() -> st.SearchStrategy[Any]:
    date = st.sampled_from(["2025-06-01", "0001-01-01", "9999-12-31", "2024-02-29", "2025-02-29"])
    clock = st.sampled_from(["12:34:56", "00:00:00", "23:59:60", "24:00:00", "12:34", "12"])
    sep = st.sampled_from(["T", "t", " ", "_"])
    fraction = st.one_of(
        st.just(""),
        st.text("0123456789", min_size=1, max_size=10).map(lambda d: "." + d),
        st.just(","),
        st.just(".5,"),
    )
    offset = st.sampled_from(
        ["Z", "z", "+00:00", "-00:00", "+05:30", "+23:59", "+24:00", "+0100", "", "-12"]
    )
    text = st.builds(lambda d, s, c, f, o: f"{d}{s}{c}{f}{o}", date, sep, clock, fraction, offset)
    return st.one_of(text, text, st.integers(-10, 2**40), st.just("2025-06-01"), st.none())


def json_values() -> st.SearchStrategy[Any]:
    leaves = st.one_of(
        st.none(),
        st.booleans(),
        st.integers(-(2**70), 2**70),
        st.floats(allow_nan=False, allow_infinity=False),
        st.text(max_size=8),
        st.sampled_from(
            [
                Raw(b"1e400"),
                Raw(b"-1e400"),
                Raw(b"1E+2"),
                Raw(b"-0"),
                Raw(b"0.1234567"),
                Raw(b"123456789012345678901234567890"),
                Raw(b"1" + b"0" * 400),
                Raw(b"2.4e-324"),
                Raw(b'"\\u0000"'),
                Raw(b'"\\ud800"'),
                Raw(b'"\\ud83d\\ude00"'),
                Raw(b'"\xff"'),
                Raw(b'"caf\xc3\xa9"'),
                Raw(b"[" * 260 + b"]" * 260),
                Raw(b"[" * 120 + b"]" * 120),
                "\x00",
                "2025-06-01T00:00:00.1234567Z",
            ]
        ),
    )
    return st.recursive(
        leaves,
        lambda inner: st.one_of(
            st.lists(inner, max_size=3), st.dictionaries(st.text(max_size=4), inner, max_size=3)
        ),
        max_leaves=6,
    )


def labels() -> st.SearchStrategy[Any]:
    return st.one_of(
        st.sampled_from(["gpt", "x" * 200, "x" * 201, "", "é" * 200, "\x00"]),
        st.text(max_size=5),
        st.integers(),
    )


def metadata() -> st.SearchStrategy[Any]:
    value: st.SearchStrategy[Any] = st.one_of(
        st.text(max_size=4),
        st.booleans(),
        st.integers(-(2**70), 2**70),
        st.floats(allow_nan=False, allow_infinity=False),
        st.sampled_from([None, [], {}, Raw(b"1e400"), Raw(b"1.0")]),
    )
    keys = st.one_of(st.text(max_size=3), st.sampled_from(["", "k" * 201]))
    return st.one_of(
        st.dictionaries(keys, value, max_size=4),
        st.just({f"k{i}": i for i in range(65)}),
        st.just({f"k{i}": i for i in range(64)}),
    )


def amounts() -> st.SearchStrategy[Any]:
    return st.one_of(
        st.sampled_from(["0.0042", "1", "-1", "1e3", "NaN", " 1.5", "0." + "1" * 13, "1" * 31]),
        st.decimals(allow_nan=False, allow_infinity=False).map(str),
        st.floats(0, 10, allow_nan=False),
        st.integers(-5, 10**20),
    )


def usages() -> st.SearchStrategy[Any]:
    tokens = st.one_of(st.integers(-1, 10**15 + 1), st.just(10**20), st.booleans(), st.none())
    cost = st.one_of(
        st.none(),
        st.fixed_dictionaries(
            {"amount": amounts()},
            optional={"currency": st.sampled_from(["USD", "usd", "EURO", "USD\n"])},
        ),
    )
    return st.one_of(
        st.none(),
        st.fixed_dictionaries(
            {}, optional={"input_tokens": tokens, "output_tokens": tokens, "cost": cost}
        ),
        st.just([]),
    )


TRACEPARENT = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"


def traceparents() -> st.SearchStrategy[Any]:
    return st.sampled_from(
        [TRACEPARENT, TRACEPARENT.upper(), "00-" + "0" * 32 + "-b7ad6b7169203331-01", "x", 5, None]
    )


def data_fields(kind: str) -> dict[str, st.SearchStrategy[Any]]:
    """Fields of the data of ``kind`` (and of other kinds, which it ignores or rejects)."""
    request = {
        "input_data": st.one_of(
            st.dictionaries(st.text(max_size=4), json_values(), max_size=3), json_values()
        ),
        "agent_name": st.one_of(st.text(max_size=5), st.none(), st.integers()),
        "user_name": st.one_of(st.text(max_size=5), st.none()),
        "timeout_ms": st.one_of(
            st.integers(-1, 366 * 86_400_000 + 1), st.none(), st.just(1.0), st.just("5")
        ),
        "model": st.one_of(labels(), st.none()),
        "tags": st.one_of(st.lists(labels(), max_size=3), st.just(["t"] * 65), st.none()),
        "metadata": st.one_of(metadata(), st.none()),
        "parent_execution_id": st.one_of(uuids(), st.none()),
    }
    ends = {
        "usage": usages(),
        "output_data": json_values(),
        "error_message": st.one_of(st.text(max_size=5), st.none()),
        "reason": st.one_of(st.sampled_from(["worker_lost", "late", ""]), st.none(), st.integers()),
        "last_seen_at": times(),
        "since": times(),
        "limit_ms": st.one_of(st.integers(-1, 10**20), st.none()),
    }
    return request | ends


TEXT = st.text(st.characters(codec="utf-8", exclude_categories=["Cs"]), max_size=6)


def valid_json() -> st.SearchStrategy[Any]:
    leaves = st.one_of(
        st.none(),
        st.booleans(),
        st.integers(-(2**70), 2**70),
        st.floats(allow_nan=False, allow_infinity=False),
        TEXT,
        st.sampled_from([Raw(b"1E+2"), Raw(b"-0"), Raw(b"0.5"), Raw(b'"\\ud83d\\ude00"')]),
        # Too deep for pydantic (about 250 levels), not for msgspec; and deep enough for neither.
        st.sampled_from([Raw(b"[" * 260 + b"]" * 260), Raw(b"[" * 120 + b"]" * 120)]),
    )
    return st.recursive(
        leaves,
        lambda inner: st.one_of(
            st.lists(inner, max_size=3), st.dictionaries(TEXT, inner, max_size=3)
        ),
        max_leaves=8,
    )


def valid_label() -> st.SearchStrategy[str]:
    """A label, and now and then one just too long or empty."""
    return st.one_of(
        st.text(st.characters(codec="utf-8", exclude_categories=["Cs"]), min_size=1, max_size=4),
        st.sampled_from(["x" * 200, "é" * 200, "é" * 201, ""]),
    )


def edge(valid: st.SearchStrategy[Any], *invalid: Any) -> st.SearchStrategy[Any]:
    """Mostly ``valid``; now and then a value just past one of the contract's bounds."""
    return st.one_of(valid, valid, st.sampled_from(invalid))


def valid_data(kind: str) -> st.SearchStrategy[dict[str, Any]]:
    """The data of a valid event of ``kind``, with its optional fields now and then."""
    usage = st.fixed_dictionaries(
        {},
        optional={
            "input_tokens": edge(st.integers(0, 10**15), -1, 10**15 + 1),
            "output_tokens": edge(st.integers(0, 10**15), -1, 10**15 + 1),
            "cost": st.fixed_dictionaries(
                {"amount": st.sampled_from(["0.0042", "12", "0"])},
                optional={"currency": st.just("EUR")},
            ),
        },
    )
    required: dict[str, st.SearchStrategy[Any]] = {}
    optional: dict[str, st.SearchStrategy[Any]] = {}
    if kind in ("ExecutionQueued", "ExecutionStarted"):
        required["input_data"] = st.dictionaries(TEXT, valid_json(), max_size=3)
        optional = {
            "agent_name": st.one_of(TEXT, st.none()),
            "user_name": st.one_of(TEXT, st.none()),
            "timeout_ms": edge(st.integers(1, 366 * 86_400_000), 0, 366 * 86_400_000 + 1),
            "model": valid_label(),
            "tags": edge(st.lists(valid_label(), max_size=3), ["t"] * 64, ["t"] * 65),
            "metadata": edge(
                st.dictionaries(
                    valid_label(),
                    st.one_of(
                        TEXT,
                        st.booleans(),
                        st.integers(),
                        st.floats(allow_nan=False, allow_infinity=False),
                    ),
                    max_size=3,
                ),
                {f"k{i}": i for i in range(64)},
                {f"k{i}": i for i in range(65)},
            ),
            "parent_execution_id": st.sampled_from(IDS),  # IDS[0]: the execution itself
        }
    elif kind != "ExecutionHeartbeat":
        optional["usage"] = st.one_of(usage, st.none())
        if kind in ("ExecutionCompleted", "ExecutionFailed"):
            optional["output_data"] = valid_json()
        if kind == "ExecutionFailed":
            required["error_message"] = TEXT
        if kind == "ExecutionCancelled":
            optional["reason"] = st.one_of(TEXT, st.none())
        if kind == "ExecutionTimedOut":
            required |= {
                "reason": edge(st.sampled_from(["worker_lost", "late"]), ""),
                "last_seen_at": edge(st.just("2025-06-01T11:00:00Z"), "2025-06-01T11:00"),
                "since": edge(
                    st.just("2025-06-01T11:00:00.5+01:00"), "2025-06-01T11:00:00.1234567Z"
                ),
                "limit_ms": edge(st.integers(0, 10**12), -1),
            }
    return st.fixed_dictionaries(required, optional=optional)


ENVELOPE = ["specversion", "id", "source", "type", "subject", "time", "datacontenttype", "data"]


@st.composite
def events(draw: st.DrawFn) -> bytes:
    """A valid event's JSON, with up to three mutations."""
    kind = draw(st.sampled_from(TYPES))
    execution = IDS[0]
    data = {"execution_id": execution, "agent_id": draw(st.sampled_from(IDS)), "user_id": IDS[2]}
    data |= draw(valid_data(kind))
    event: dict[str, Any] = {
        "specversion": "1.0",
        "id": draw(st.sampled_from(IDS)),
        "source": draw(edge(st.just("urn:worker:1"), "")),
        "type": kind,
        "subject": execution,
        "time": draw(
            edge(
                st.sampled_from(["2025-06-01T12:00:00.123456+00:00", "2025-06-01T12:00:00Z"]),
                "2025-06-01T12:00:00",  # no offset
            )
        ),
        "data": data,
    }
    optional = {
        "datacontenttype": st.just("application/json"),
        "traceparent": st.just(TRACEPARENT),
        "tracestate": st.just("k=v"),
    }
    event |= draw(st.fixed_dictionaries({}, optional=optional))
    fields = data_fields(kind)
    envelope: dict[str, st.SearchStrategy[Any]] = {
        "specversion": st.sampled_from(["0.3", 1.0, None]),
        "id": uuids(),
        "source": st.sampled_from(["", 5, "é"]),
        "type": st.sampled_from([*TYPES, "ExecutionPaused", "", 1]),
        "subject": uuids(),
        "time": times(),
        "datacontenttype": st.sampled_from(["text/plain", None]),
        "traceparent": traceparents(),
        "tracestate": st.sampled_from(["", "é=1", "k=v" * 200, 7, None]),
    }
    duplicate = False
    for mutation in draw(st.lists(st.integers(0, 5), max_size=3)):
        if mutation == 0:  # a data field: any kind's, any value
            name = draw(st.sampled_from(sorted(fields)))
            data[name] = draw(fields[name])
        elif mutation == 1:  # an envelope field
            name = draw(st.sampled_from(sorted(envelope)))
            event[name] = draw(envelope[name])
        elif mutation == 2:  # a field missing
            where = draw(st.sampled_from([event, data]))
            if where:
                del where[draw(st.sampled_from(sorted(where)))]
        elif mutation == 3:  # a field no reader knows
            where = draw(st.sampled_from([event, data]))
            where[draw(st.sampled_from(["extra", "more"]))] = draw(json_values())
        elif mutation == 4:  # one of the ids
            data[draw(st.sampled_from(["execution_id", "agent_id", "user_id"]))] = draw(uuids())
        else:
            duplicate = True
    text = _dumps(event)
    if duplicate:  # a key written twice: a JSON reader keeps one of them
        where = draw(st.sampled_from(["top", "data"]))
        key = draw(st.sampled_from([*ENVELOPE, "execution_id", "agent_name", "usage"]))
        again = _dumps(draw(st.one_of(json_values(), st.sampled_from(TYPES), uuids(), times())))
        pair = json.dumps(key).encode() + b":" + again + b","
        if where == "top" and draw(st.booleans()):
            text = b"{" + pair + text[1:]
        elif where == "top":
            text = text[:-1] + b"," + pair[:-1] + b"}"
        else:
            text = text.replace(b'"data": {', b'"data": {' + pair, 1)
    return text


def _dumps(value: Any) -> bytes:
    """JSON with every Raw put in as it is."""
    raws: list[bytes] = []

    def hold(item: Any) -> Any:
        if isinstance(item, Raw):
            raws.append(item.text)
            return f"@@raw{len(raws) - 1}@@"
        if isinstance(item, dict):
            return {k: hold(v) for k, v in item.items()}
        if isinstance(item, list):
            return [hold(v) for v in item]
        return item

    text = json.dumps(hold(value)).encode()
    for i, raw_text in enumerate(raws):
        text = text.replace(f'"@@raw{i}@@"'.encode(), raw_text, 1)
    return text


def plain(value: Any) -> Any:
    """A value's fields as plain data, exact enough to tell 1 from 1.0 and one offset from
    another, whichever decoder made it."""
    if isinstance(value, mirror.ExecutionData | mirror.Usage | mirror._Envelope):
        fields = {name: getattr(value, name) for name in value.__struct_fields__}
        return ("event", {k: plain(v) for k, v in fields.items()})
    if isinstance(value, BaseModel):
        fields = {name: getattr(value, name) for name in type(value).model_fields}
        fields.pop("type", None)
        return ("event", {k: plain(v) for k, v in fields.items()})
    if isinstance(value, dict):
        return {repr(k): plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [plain(v) for v in value]
    if isinstance(value, datetime):
        return ("time", value.isoformat())
    if isinstance(value, UUID | Decimal):
        return repr(value)
    return (type(value).__name__, repr(value))


def keyed(value: bytes, key: bytes | None) -> FakeRecord:
    return FakeRecord(value, key)


def same_verdict(contract: AnyEvent | Poison, hot: AnyEvent | Poison) -> None:
    if isinstance(contract, Poison):
        assert isinstance(hot, Poison), f"hot path accepted what the contract rejects: {hot!r}"
        assert hot.reason == contract.reason
        return
    assert not isinstance(hot, Poison), f"hot path rejected a valid event: {hot.reason}"
    assert hot.type == contract.type
    assert plain(hot) == plain(contract)
    assert plain(row_fields(fold(None, hot))) == plain(row_fields(fold(None, contract)))


def row_fields(row: Execution) -> dict[str, Any]:
    return {f.name: getattr(row, f.name) for f in dataclasses.fields(row)}


@settings(max_examples=1500, suppress_health_check=[HealthCheck.too_slow])
@given(events(), st.sampled_from([None, "id", "other"]))
@example(
    b'{"specversion":"1.0","id":"'
    + IDS[0].encode()
    + b'","source":"s","type":"ExecutionHeartbeat",'
    b'"subject":"' + IDS[1].encode() + b'","time":"2025-06-01T00:00:00.1234567Z",'
    b'"data":{"execution_id":"' + IDS[1].encode() + b'","agent_id":"' + IDS[0].encode() + b'",'
    b'"user_id":"' + IDS[0].encode() + b'"}}',
    "id",
)
def test_the_hot_path_reads_every_record_as_the_contract_does(
    value: bytes, key: str | None
) -> None:
    execution = _execution_of(value)
    rec = keyed(value, None if key is None else (execution if key == "id" else IDS[2].encode()))

    same_verdict(decode(rec, MAX_BYTES), decode_hot(rec, MAX_BYTES))


def _execution_of(value: bytes) -> bytes:
    for candidate in IDS:
        if b'"execution_id": "' + candidate.encode() in value:
            return candidate.encode()
    return IDS[0].encode()


@settings(max_examples=200, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(events(), min_size=1, max_size=12))
def test_a_batch_folds_to_the_rows_the_contracts_events_fold_to(values: list[bytes]) -> None:
    records = [keyed(value, _execution_of(value)) for value in values]
    decoded = [decode(r, MAX_BYTES) for r in records]

    changes = changes_of(records, MAX_BYTES)

    assert changes.rows == fold_all([e for e in decoded if not isinstance(e, Poison)])
    assert [p.reason for p in changes.poison] == [
        e.reason for e in decoded if isinstance(e, Poison)
    ]


def test_the_benchmarks_events_take_the_hot_path() -> None:
    """The point of the mirror: plain events do not fall back to the contract."""
    value = (
        b'{"specversion":"1.0","id":"' + IDS[0].encode() + b'","source":"urn:worker:bench",'
        b'"type":"ExecutionStarted","subject":"' + IDS[1].encode() + b'",'
        b'"time":"2025-06-01T00:00:00.000281+00:00","datacontenttype":"application/json",'
        b'"traceparent":"' + TRACEPARENT.encode() + b'",'
        b'"data":{"execution_id":"' + IDS[1].encode() + b'","agent_id":"' + IDS[0].encode() + b'",'
        b'"user_id":"' + IDS[2].encode() + b'","input_data":{"prompt":"p","temperature":0.5},'
        b'"agent_name":"Agent 1","usage":null}}'
    )

    assert isinstance(decode_hot(keyed(value, IDS[1].encode()), MAX_BYTES), mirror.ExecutionStarted)
    assert mirror.decode_sure(value.replace(b"00.000281", b"00.0002811")) is None
