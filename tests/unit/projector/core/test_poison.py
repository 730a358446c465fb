"""Every dead-letter reason decode gives has a kind of its own, never "other"."""

from __future__ import annotations

import pytest

from agent_history.projector.core.decode import Poison, decode
from agent_history.projector.core.poison import POISON_KINDS, poison_kind
from tests.unit.projector.core.test_batch import MAX_BYTES, FakeRecord, binary, raw, wire


def _with(field: str, wrong: object) -> bytes:
    value = wire("ExecutionCompleted")
    value["data"][field] = wrong
    return raw(value)


def _binary_without_id() -> FakeRecord:
    rec = binary(wire("ExecutionStarted"))
    return FakeRecord(rec.value, rec.key, headers=[h for h in rec.headers if h[0] != "ce_id"])


@pytest.mark.parametrize(
    ("rec", "kind"),
    [
        pytest.param(FakeRecord(None, b"k"), "tombstone", id="tombstone"),
        pytest.param(FakeRecord(b"x" * (MAX_BYTES + 1)), "too_large", id="too-large"),
        pytest.param(FakeRecord(b"{not json"), "invalid_event", id="invalid-json"),
        pytest.param(FakeRecord(b"[]"), "invalid_event", id="not-an-object"),
        pytest.param(FakeRecord(_with("agent_id", "nobody")), "invalid_event", id="wrong-type"),
        pytest.param(_binary_without_id(), "invalid_event", id="binary-missing-header"),
        pytest.param(
            FakeRecord(raw(wire("ExecutionStarted") | {"type": "ExecutionPaused"})),
            "unknown_type",
            id="unknown-type",
        ),
        pytest.param(
            FakeRecord(raw(wire("ExecutionCompleted")), b"other"), "key_mismatch", id="key"
        ),
        pytest.param(
            FakeRecord(raw(wire("ExecutionStarted", input_data={"t": "a\x00b"}))),
            "unstorable",
            id="nul",
        ),
        pytest.param(
            FakeRecord(raw(wire("ExecutionStarted", input_data={"t": 1e400}))),
            "unstorable",
            id="not-finite",
        ),
        pytest.param(
            # 309 digits and no exponent: past the largest float (pydantic reads inf).
            FakeRecord(
                raw(wire("ExecutionStarted", input_data={"t": 0})).replace(
                    b'"t": 0', b'"t": 2' + b"0" * 308 + b".5"
                )
            ),
            "unstorable",
            id="long-number",
        ),
        pytest.param(
            FakeRecord(raw(wire("ExecutionStarted") | {"time": "0001-01-01T00:00:00+01:00"})),
            "unstorable",
            id="time-out-of-range",
        ),
    ],
)
def test_each_reason_has_its_kind(rec: FakeRecord, kind: str) -> None:
    decoded = decode(rec, MAX_BYTES)

    assert isinstance(decoded, Poison), decoded
    assert poison_kind(decoded.reason) == kind, decoded.reason


def test_a_reason_of_no_known_kind_is_other() -> None:
    assert poison_kind("something new") == "other"
    assert set(POISON_KINDS) >= {"other", "tombstone", "invalid_event"}
