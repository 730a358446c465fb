"""A batch of records: which are poison, which are fresh, and what they change."""

from __future__ import annotations

import json
import random
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID, uuid4

import pytest

from agent_history.contract.events import (
    EventType,
    ExecutionCompleted,
    ExecutionFailed,
    encode_binary,
    event_from_dict,
    record_key,
)
from agent_history.projector.core import changes as changes_module
from agent_history.projector.core.changes import (
    Changes,
    Held,
    changes_of,
    combined,
    held_back,
    held_rows,
)
from agent_history.projector.core.decode import Poison, Record, decode, decode_hot
from agent_history.projector.core.fold import Execution
from agent_history.projector.core.names import Name
from agent_history.projector.core.plan import (
    Plan,
    Stretch,
    firsts,
    joined,
    plan_batch,
    stretches_of,
)
from agent_history.projector.core.wire import decode_sure as wire_decode_sure

T0 = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)
AGENT = UUID("a0000000-0000-4000-8000-000000000001")
USER = UUID("b0000000-0000-4000-8000-000000000001")
MAX_BYTES = 64 * 1024


@dataclass(frozen=True)
class FakeRecord:
    """Just the parts of a Kafka record the projector reads."""

    value: bytes | None
    key: bytes | None = None
    topic: str = "agent-executions"
    partition: int = 0
    offset: int = 0
    headers: Sequence[tuple[str, bytes]] = ()


def wire(
    kind: EventType,
    *,
    execution_id: UUID | None = None,
    seconds: float = 0,
    agent_id: UUID = AGENT,
    user_id: UUID = USER,
    **data: Any,
) -> dict[str, Any]:
    """An event as the JSON object on the wire."""
    execution = str(execution_id or uuid4())
    if kind in ("ExecutionQueued", "ExecutionStarted"):
        data.setdefault("input_data", {"prompt": "p"})
    if kind == "ExecutionFailed":
        data.setdefault("error_message", "boom")
    return {
        "specversion": "1.0",
        "id": str(uuid4()),
        "source": "tests/unit/projector",
        "subject": execution,
        "time": (T0 + timedelta(seconds=seconds)).isoformat(),
        "type": kind,
        "data": {"execution_id": execution, "agent_id": str(agent_id), "user_id": str(user_id)}
        | data,
    }


def raw(value: dict[str, Any]) -> bytes:
    return json.dumps(value).encode()


def record(value: dict[str, Any], *, keyed: bool = True, **where: Any) -> FakeRecord:
    """The record a producer writes for ``value``: keyed by its execution id."""
    key = value["data"]["execution_id"].encode() if keyed else None
    return FakeRecord(raw(value), key, **where)


def binary(value: dict[str, Any]) -> FakeRecord:
    """The record a binary-mode client writes for ``value``: attributes in ce_ headers."""
    headers, data = encode_binary(event_from_dict(value))
    attributes = [(name, text.encode()) for name, text in headers.items()]
    return FakeRecord(data, value["data"]["execution_id"].encode(), headers=attributes)


def at(partition: int, offset: int) -> FakeRecord:
    return FakeRecord(b"{}", partition=partition, offset=offset)


# --- decode ---------------------------------------------------------------------------------


def test_a_valid_record_decodes_to_its_event() -> None:
    execution = uuid4()
    value = wire("ExecutionFailed", execution_id=execution, error_message="ValueError: boom")

    event = decode(record(value), MAX_BYTES)

    assert isinstance(event, ExecutionFailed)
    assert (event.execution_id, event.data.error_message) == (execution, "ValueError: boom")


def test_a_binary_record_decodes_to_the_same_event_as_a_structured_one() -> None:
    value = wire("ExecutionFailed", error_message="ValueError: boom")

    assert decode(binary(value), MAX_BYTES) == decode(record(value), MAX_BYTES)


def test_a_binary_record_is_checked_like_a_structured_one() -> None:
    value = wire("ExecutionStarted", input_data={"text": "a\x00b"})
    nul, keyed_elsewhere = binary(value), binary(wire("ExecutionCompleted"))
    elsewhere = FakeRecord(keyed_elsewhere.value, b"other", headers=keyed_elsewhere.headers)

    for rec, why in [(nul, "NUL character"), (elsewhere, "record key does not match")]:
        decoded = decode(rec, MAX_BYTES)
        assert isinstance(decoded, Poison)
        assert why in decoded.reason
    assert isinstance(decode(nul, len(nul.value or b"") - 1), Poison)


def test_a_record_without_a_key_is_accepted() -> None:
    assert not isinstance(decode(record(wire("ExecutionStarted"), keyed=False), MAX_BYTES), Poison)


def _without(path: str) -> dict[str, Any]:
    value = wire("ExecutionFailed")
    del value["data"][path]
    return value


def _with(field: str, wrong: Any) -> dict[str, Any]:
    value = wire("ExecutionCompleted")
    value["data"][field] = wrong
    return value


@pytest.mark.parametrize(
    ("value", "key", "reason"),
    [
        pytest.param(None, b"k", "tombstone", id="tombstone"),
        pytest.param(b"{not json", None, "Invalid JSON", id="invalid-json"),
        pytest.param(b"", None, "Invalid JSON", id="empty"),
        pytest.param(b"[]", None, "invalid event", id="not-an-object"),
        pytest.param(
            raw(wire("ExecutionStarted") | {"type": "ExecutionPaused"}),
            None,
            "unknown type: ExecutionPaused",
            id="unknown-type",
        ),
        pytest.param(
            raw(_without("error_message")),
            None,
            "data.error_message: Field required",
            id="missing-field",
        ),
        pytest.param(
            raw(_with("agent_id", "nobody")),
            None,
            "data.agent_id: Input should be a valid UUID",
            id="wrong-type-uuid",
        ),
        pytest.param(raw(_with("user_id", 17)), None, "data.user_id", id="wrong-type-int"),
        pytest.param(
            raw(wire("ExecutionCompleted")), b"other", "record key does not", id="key-mismatch"
        ),
        pytest.param(
            raw(wire("ExecutionStarted", input_data={"text": "a\x00b"})),
            None,
            "NUL character",
            id="nul",
        ),
    ],
)
def test_poison_says_why(value: bytes | None, key: bytes | None, reason: str) -> None:
    rec = FakeRecord(value, key)

    decoded = decode(rec, MAX_BYTES)

    assert isinstance(decoded, Poison), f"expected poison ({reason}), got {decoded!r}"
    assert reason in decoded.reason
    assert decoded.record is rec


def test_the_key_of_another_execution_is_poison() -> None:
    value = wire("ExecutionStarted")

    decoded = decode(FakeRecord(raw(value), record_key(uuid4())), MAX_BYTES)

    assert isinstance(decoded, Poison)
    assert decoded.reason == "record key does not match data.execution_id"


def test_a_record_over_the_size_limit_is_poison_and_one_at_the_limit_is_not() -> None:
    value = raw(wire("ExecutionCompleted", output_data="x" * 500))

    over = decode(FakeRecord(value), len(value) - 1)
    at_limit = decode(FakeRecord(value), len(value))

    assert isinstance(over, Poison)
    assert over.reason == f"record value is {len(value)} bytes, over the {len(value) - 1} limit"
    assert not isinstance(at_limit, Poison), at_limit


def test_an_escaped_backslash_before_u0000_is_text_not_a_nul() -> None:
    # The output holds the six characters \u0000 (say, source code an agent wrote): no NUL,
    # so nothing stops PostgreSQL from storing it.
    value = wire("ExecutionCompleted", output_data="printf('\\u0000')")
    written = raw(value)
    assert b"\\\\u0000" in written

    decoded = decode(FakeRecord(written), MAX_BYTES)

    assert isinstance(decoded, ExecutionCompleted), f"expected the event, got {decoded!r}"
    assert decoded.data.output_data == "printf('\\u0000')"


# --- plan_batch -----------------------------------------------------------------------------


def plan_of(records: Sequence[Record], stored: dict[int, int], **kwargs: Any) -> Plan:
    return plan_batch(stretches_of(records), stored, **kwargs)


def test_a_batchs_stretches_are_each_partitions_first_and_last_offsets_in_order() -> None:
    records = [at(1, 4), at(0, 1), at(1, 5), at(0, 2), at(1, 6)]

    stretches = stretches_of(records)

    assert list(stretches.items()) == [(1, Stretch(4, 6)), (0, Stretch(1, 2))]
    assert firsts(stretches) == {1: 4, 0: 1}


def test_the_stretches_of_two_fetches_joined_are_those_of_their_records() -> None:
    before = [at(1, 4), at(0, 1), at(1, 5)]
    after = [at(2, 7), at(0, 2), at(1, 6)]

    assert joined(stretches_of(before), stretches_of(after)) == stretches_of(before + after)
    assert list(joined(stretches_of(before), stretches_of(after))) == [1, 0, 2]


def test_without_a_checkpoint_the_batch_is_applied() -> None:
    plan = plan_of([at(0, 3), at(0, 4), at(0, 5)], {})

    assert (plan.next_offsets, plan.refetch, plan.gaps) == ({0: 6}, {}, {})


def test_a_batch_that_starts_at_the_checkpoint_is_applied() -> None:
    plan = plan_of([at(0, o) for o in range(5, 9)], {0: 5})

    assert (plan.next_offsets, plan.refetch, plan.gaps) == ({0: 9}, {}, {})


def test_a_batch_with_records_below_the_checkpoint_is_read_again_from_it() -> None:
    plan = plan_of([at(0, o) for o in range(3, 9)], {0: 5})

    assert (plan.next_offsets, plan.refetch, plan.gaps) == ({}, {0: 5}, {})


def test_a_batch_entirely_below_the_checkpoint_is_read_again_from_it() -> None:
    plan = plan_of([at(0, 3), at(0, 4)], {0: 5})

    assert (plan.next_offsets, plan.refetch, plan.gaps) == ({}, {0: 5}, {})


def test_a_gap_after_the_checkpoint_reads_again_from_it() -> None:
    plan = plan_of([at(0, 7), at(0, 8)], {0: 5})

    assert (plan.next_offsets, plan.refetch, plan.gaps) == ({}, {0: 5}, {0: 5})


def test_a_gap_already_read_again_once_is_accepted() -> None:
    plan = plan_of([at(0, 7), at(0, 8)], {0: 5}, accept_gap={0})

    assert (plan.next_offsets, plan.refetch, plan.gaps) == ({0: 9}, {}, {})


def test_a_partition_without_a_checkpoint_never_rewinds() -> None:
    plan = plan_of([at(0, 1000)], {})

    assert (plan.next_offsets, plan.refetch) == ({0: 1001}, {})


def test_a_batch_is_applied_whole_or_read_again_whole() -> None:
    records = [at(0, 10), at(1, 5), at(2, 9), at(0, 11), at(3, 1), at(4, 20), at(3, 2)]
    stored = {1: 5, 3: 2, 4: 18}

    # 0: no checkpoint; 1: starts at it; 2: no checkpoint; 3: one record already applied;
    # 4: a gap, accepted.
    plan = plan_of(records, stored, accept_gap={4})
    assert (plan.next_offsets, plan.gaps) == ({}, {})
    assert plan.refetch == {0: 10, 1: 5, 2: 9, 3: 2, 4: 20}, "3 from its checkpoint"

    # Without partition 3's applied record, the rest is applied at once.
    plan = plan_of(
        [r for r in records if (r.partition, r.offset) != (3, 1)], stored, accept_gap={4}
    )
    assert plan.next_offsets == {0: 12, 1: 6, 2: 10, 3: 3, 4: 21}
    assert (plan.refetch, plan.gaps) == ({}, {})

    # A gap not accepted: read again, the gap's partition from its checkpoint.
    plan = plan_of([r for r in records if r.partition != 3], stored)
    assert plan.refetch == {0: 10, 1: 5, 2: 9, 4: 18}
    assert plan.gaps == {4: 18}


# --- changes_of -----------------------------------------------------------------------------


def test_poison_is_set_aside_and_the_valid_events_are_folded() -> None:
    execution = uuid4()
    started = record(wire("ExecutionStarted", execution_id=execution), offset=0)
    broken = FakeRecord(b"{not json", offset=1)
    tombstone = FakeRecord(None, offset=2)
    completed = record(wire("ExecutionCompleted", execution_id=execution, seconds=2), offset=3)

    changes = changes_of([started, broken, tombstone, completed], MAX_BYTES)

    assert [(p.record, "Invalid JSON" in p.reason) for p in changes.poison] == [
        (broken, True),
        (tombstone, False),
    ]
    assert list(changes.rows) == [execution]
    assert changes.rows[execution].status == "completed"
    assert changes.rows[execution].execution_time_ms == 2000


def test_a_batch_of_only_poison_changes_no_rows() -> None:
    changes = changes_of([FakeRecord(None), FakeRecord(b"nope")], MAX_BYTES)

    assert (changes.rows, changes.agents, changes.users, len(changes.poison)) == ({}, {}, {}, 2)


def test_rows_are_folded_per_execution() -> None:
    first, second = uuid4(), uuid4()
    records = [
        record(wire("ExecutionQueued", execution_id=first)),
        record(wire("ExecutionStarted", execution_id=second)),
        record(wire("ExecutionFailed", execution_id=second, seconds=1)),
    ]

    rows = changes_of(records, MAX_BYTES).rows

    assert {key: row.status for key, row in rows.items()} == {first: "pending", second: "failed"}


@pytest.mark.parametrize("max_traces", [128, 2])
def test_two_batches_combined_change_what_their_records_change_as_one(
    max_traces: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(changes_module, "MAX_TRACES", max_traces)
    one, two, three, four = uuid4(), uuid4(), uuid4(), uuid4()
    erased, other_agent = uuid4(), uuid4()

    def parent(trace: str) -> str:
        return f"00-{trace * 32}-{'1' * 16}-01"

    def traced(value: dict[str, Any], trace: str) -> dict[str, Any]:
        return value | {"traceparent": parent(trace)}

    queued = record(
        traced(
            wire("ExecutionQueued", execution_id=one, seconds=1, agent_name="Old", user_name="Ada"),
            "a",
        )
    )
    broken = FakeRecord(b"{not json")
    erased_queued = record(
        wire("ExecutionQueued", execution_id=two, user_id=erased, user_name="Eve")
    )
    records = [
        queued,
        broken,
        record(
            traced(wire("ExecutionStarted", execution_id=one, seconds=5, agent_name="New"), "b")
        ),
        erased_queued,
        queued,  # delivered twice
        broken,
        record(traced(wire("ExecutionCompleted", execution_id=one, seconds=9), "a")),
        record(wire("ExecutionStarted", execution_id=two, user_id=erased, seconds=2)),
        erased_queued,  # delivered twice: counted twice, as in two batches
        record(wire("ExecutionFailed", execution_id=three, agent_id=other_agent, seconds=3)),
        record(
            traced(
                wire(
                    "ExecutionQueued",
                    execution_id=four,
                    seconds=2,
                    user_id=erased,
                    user_name="Grace",
                ),
                "c",
            )
        ),
        record(
            traced(wire("ExecutionQueued", execution_id=four, seconds=2, user_name="Grace"), "d")
        ),
    ]

    def parts(changes: Changes) -> tuple[Any, ...]:
        return (
            changes.rows,
            changes.agents,
            changes.users,
            changes.poison,
            changes.dropped,
            list(changes.traces),
        )

    whole = parts(changes_of(records, MAX_BYTES, {erased}))
    rows, agents, _, poison, dropped, traces = whole
    assert set(rows) == {one, three, four}
    assert rows[one].status == "completed"
    assert agents == {AGENT: Name("New", T0 + timedelta(seconds=5)), other_agent: Name(None, None)}
    assert ([p.record for p in poison], dropped) == ([broken, broken], {erased: 4})
    assert traces == [parent("a"), parent("b"), parent("d")][:max_traces]
    for cut in range(len(records) + 1):
        first = changes_of(records[:cut], MAX_BYTES, {erased})
        then = changes_of(records[cut:], MAX_BYTES, {erased})
        assert parts(combined(first, then)) == whole, f"cut after {cut} records"


@pytest.mark.parametrize("reverse", [False, True])
def test_the_name_from_the_newest_event_wins(reverse: bool) -> None:
    other_user = uuid4()
    records = [
        record(wire("ExecutionQueued", seconds=1, agent_name="Old name", user_name="Ada")),
        record(wire("ExecutionStarted", seconds=5, agent_name="New name", user_name=None)),
        record(wire("ExecutionStarted", seconds=3, agent_name="Middle name")),
        # Terminal events carry no names: they never erase one.
        record(wire("ExecutionCompleted", seconds=9)),
        record(wire("ExecutionQueued", seconds=2, user_id=other_user, user_name="Grace")),
    ]

    changes = changes_of(records[::-1] if reverse else records, MAX_BYTES)

    assert changes.agents == {AGENT: Name("New name", T0 + timedelta(seconds=5))}
    assert changes.users == {
        USER: Name("Ada", T0 + timedelta(seconds=1)),
        other_user: Name("Grace", T0 + timedelta(seconds=2)),
    }


@pytest.mark.parametrize("reverse", [False, True])
def test_between_names_of_the_same_time_the_greater_name_wins(reverse: bool) -> None:
    records = [
        record(wire("ExecutionStarted", seconds=4, agent_name="Beta")),
        record(wire("ExecutionStarted", seconds=4, agent_name="Alpha")),
    ]

    changes = changes_of(records[::-1] if reverse else records, MAX_BYTES)

    assert changes.agents == {AGENT: Name("Beta", T0 + timedelta(seconds=4))}


def test_an_agent_and_user_seen_only_without_names_are_still_referenced() -> None:
    agent, user = uuid4(), uuid4()
    records = [
        record(wire("ExecutionCancelled", agent_id=agent, user_id=user)),
        record(wire("ExecutionStarted", agent_id=agent, user_id=user, seconds=1)),
    ]

    changes = changes_of(records, MAX_BYTES)

    assert changes.agents == {agent: Name(None, None)}
    assert changes.users == {user: Name(None, None)}


def test_names_of_poison_records_are_not_taken() -> None:
    poisoned = wire("ExecutionStarted", agent_name="Impostor", seconds=9)
    valid = wire("ExecutionStarted", agent_name="Genuine", seconds=1)

    wrong_key = FakeRecord(raw(poisoned), key=b"wrong key")

    changes = changes_of([wrong_key, record(valid)], MAX_BYTES)

    assert changes.agents == {AGENT: Name("Genuine", T0 + timedelta(seconds=1))}
    assert len(changes.poison) == 1


def test_events_of_an_erased_user_are_dropped_before_folding_and_counted() -> None:
    execution, erased = uuid4(), uuid4()
    # One execution whose events name two users: the erased user's event wins nothing.
    records = [
        record(wire("ExecutionStarted", execution_id=execution, user_id=erased, user_name="Eve")),
        record(wire("ExecutionQueued", execution_id=execution, seconds=1, user_name="Ada")),
        record(wire("ExecutionCompleted", execution_id=execution, seconds=2, user_id=erased)),
        record(wire("ExecutionStarted", user_id=erased)),
    ]

    kept = changes_of(records, MAX_BYTES, frozenset({erased}))
    unerased = changes_of(records[1:2], MAX_BYTES)

    assert kept.rows == unerased.rows, "as if the erased user's events were not there"
    assert kept.users == unerased.users == {USER: Name("Ada", T0 + timedelta(seconds=1))}
    assert kept.dropped == {erased: 3}
    assert changes_of(records, MAX_BYTES).dropped == {}, "nobody erased, nothing dropped"


@pytest.mark.parametrize(
    ("kind", "data"),
    [
        ("ExecutionCompleted", {"output_data": {"text": "a\x00b"}}),
        ("ExecutionStarted", {"input_data": {"a\x00b": 1}}),
        ("ExecutionStarted", {"input_data": {"deep": [{"a\x00b": None}]}}),
        ("ExecutionStarted", {"metadata": {"a\x00b": "v"}}),
        ("ExecutionStarted", {"tags": ["a\x00b"]}),
        ("ExecutionFailed", {"error_message": "a\x00b"}),
    ],
    ids=["output-value", "input-key", "nested-key", "metadata-key", "tag", "error"],
)
def test_the_hot_path_dead_letters_a_nul_as_the_contract_does(
    kind: EventType, data: dict[str, Any]
) -> None:
    # msgspec reads the event (an escaped NUL is valid JSON); the check after it must still
    # refuse it, for the contract's reason.
    value = raw(wire(kind, **data))
    assert wire_decode_sure(value) is not None

    hot, contract = decode_hot(FakeRecord(value), MAX_BYTES), decode(FakeRecord(value), MAX_BYTES)

    assert isinstance(hot, Poison)
    assert isinstance(contract, Poison)
    assert "NUL character" in hot.reason
    assert hot.reason == contract.reason


# --- held_back (replay's load) ---------------------------------------------------------------


def _written_by_batches(
    batches: Sequence[Sequence[FakeRecord]], most: int = 1000
) -> tuple[list[set[UUID]], dict[UUID, Execution], Held]:
    """What a replay's load writes batch by batch (the ids), all it writes merged as the upsert
    merges it, and what is still held after the last batch."""
    written: list[set[UUID]] = []
    table: Changes = Changes()
    held: Held = {}
    for batch in batches:
        read = {r.partition for r in batch}
        due = {key for key, (partition, _) in held.items() if partition in read}
        rows, held = held_back(changes_of(batch, MAX_BYTES).rows, held, batch, most)
        assert due <= set(rows), "held past a batch of its partition"
        assert not set(rows) & set(held), "written and held"
        assert len(held) <= most
        written.append(set(rows))
        table = combined(table, Changes(rows=rows))
    return written, table.rows, held


def test_a_run_not_ended_is_held_until_its_partition_is_read_again() -> None:
    ended_later, started, failed, unkeyed = uuid4(), uuid4(), uuid4(), uuid4()
    batches = [
        [
            record(wire("ExecutionQueued", execution_id=ended_later), partition=0),
            record(wire("ExecutionFailed", execution_id=failed), partition=0),
            record(wire("ExecutionQueued", execution_id=unkeyed), keyed=False, partition=0),
        ],
        [record(wire("ExecutionStarted", execution_id=started), partition=1)],
        [record(wire("ExecutionCompleted", execution_id=ended_later, seconds=5), partition=0)],
    ]
    written, table, held = _written_by_batches(batches)
    # An ended run, and one whose partition is not known, go at once; the others wait.
    assert written == [{failed, unkeyed}, set(), {ended_later}]
    assert table[ended_later].status == "completed"
    assert table[ended_later].input_rank is not None  # its Queued event came along
    assert {key: partition for key, (partition, _) in held.items()} == {started: 1}


def test_a_held_run_is_written_with_its_partitions_next_batch_even_if_still_open() -> None:
    run = uuid4()
    batches = [
        [record(wire("ExecutionQueued", execution_id=run), partition=2)],
        [record(wire("ExecutionQueued", execution_id=uuid4()), partition=2)],
    ]
    written, table, _ = _written_by_batches(batches)
    assert run in written[1]
    assert table[run].status == "pending"


def test_past_the_most_rows_held_all_are_written() -> None:
    first, second, third = uuid4(), uuid4(), uuid4()
    batches = [
        [record(wire("ExecutionQueued", execution_id=first), partition=0)],
        [record(wire("ExecutionQueued", execution_id=second), partition=1)],
        [record(wire("ExecutionQueued", execution_id=third), partition=2)],
    ]
    written, _, held = _written_by_batches(batches, most=2)
    assert written == [set(), set(), {first, second, third}]
    assert held == {}


def _timed_out(run: UUID, seconds: float) -> dict[str, Any]:
    seen = (T0 + timedelta(seconds=seconds - 60)).isoformat()
    return wire(
        "ExecutionTimedOut",
        execution_id=run,
        seconds=seconds,
        reason="worker_lost",
        last_seen_at=seen,
        since=seen,
        limit_ms=60_000,
    )


@pytest.mark.parametrize("seed", range(20))
def test_rows_held_back_and_written_later_make_the_same_table(seed: int) -> None:
    rng = random.Random(seed)
    kinds: list[EventType] = [
        "ExecutionQueued",
        "ExecutionStarted",
        "ExecutionHeartbeat",
        "ExecutionCompleted",
        "ExecutionCancelled",
    ]
    runs = [uuid4() for _ in range(12)]

    def any_record(run: UUID, seconds: int) -> FakeRecord:
        if rng.random() < 0.1:
            value = _timed_out(run, seconds)
        else:
            value = wire(rng.choice(kinds), execution_id=run, seconds=seconds)
        # Mostly on the run's own partition, as keyed records are; now and then elsewhere.
        home = runs.index(run) % 3 if rng.random() < 0.9 else rng.randrange(3)
        return record(value, keyed=rng.random() > 0.1, partition=home)

    records = [any_record(rng.choice(runs), rng.randrange(60)) for _ in range(40)]
    cuts = sorted(rng.sample(range(1, len(records)), k=rng.randrange(1, 10)))
    batches = [records[a:b] for a, b in zip([0, *cuts], [*cuts, len(records)], strict=True)]
    _, table, held = _written_by_batches(batches, most=rng.choice([2, 1000]))
    rows = held_rows(held)  # written after the last batch
    assert (
        combined(Changes(rows=table), Changes(rows=rows)).rows
        == changes_of(records, MAX_BYTES).rows
    )
