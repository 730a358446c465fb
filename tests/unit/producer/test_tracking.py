"""track_execution: Started on entry, then Completed, Failed or Cancelled on the way out; as
async and plain context managers and decorators."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from decimal import Decimal
from typing import cast
from uuid import UUID, uuid4

import pytest
from pydantic import ValidationError

from agent_history.contract.events import (
    CancelledData,
    CompletedData,
    Cost,
    ExecutionData,
    FailedData,
    RunRequestData,
    Usage,
)
from agent_history.producer.heartbeats import Heartbeats
from agent_history.producer.publisher import Publisher
from agent_history.producer.tracing import RunTracing, TraceContext
from agent_history.producer.tracking import Run, track_execution

AGENT = UUID("a0000000-0000-4000-8000-000000000001")
USER = UUID("b0000000-0000-4000-8000-000000000001")


class FakePublisher:
    """Records what it is asked to publish, from async code (publish_*) or sync (record_*)."""

    def __init__(self) -> None:
        self.published: list[tuple[str, ExecutionData]] = []
        self.heartbeats = Heartbeats(interval_s=60)
        self.tracing = RunTracing()

    async def publish_started(self, data: RunRequestData, *, trace: TraceContext = None) -> None:
        self.record_started(data)

    async def publish_end(self, data: ExecutionData, *, trace: TraceContext = None) -> None:
        self.record_end(data)

    def record_started(self, data: RunRequestData, *, trace: TraceContext = None) -> None:
        self.published.append(("started", data))

    def record_end(self, data: ExecutionData, *, trace: TraceContext = None) -> None:
        kind = {CompletedData: "completed", FailedData: "failed", CancelledData: "cancelled"}
        self.published.append((kind[type(data)], data))

    @property
    def kinds(self) -> list[str]:
        return [kind for kind, _ in self.published]

    def as_publisher(self) -> Publisher:
        return cast(Publisher, self)


def _ids(data: ExecutionData) -> tuple[UUID, UUID, UUID]:
    return (data.execution_id, data.agent_id, data.user_id)


async def test_a_run_that_returns_is_started_then_completed_with_its_output() -> None:
    fake = FakePublisher()
    tracked = track_execution(
        AGENT,
        USER,
        {"prompt": "hello"},
        publisher=fake.as_publisher(),
        agent_name="Researcher",
        user_name="Ada",
    )

    async with tracked as run:
        assert fake.kinds == ["started"], "Started is published on entry"
        run.output = {"answer": 42}

    assert fake.published == [
        (
            "started",
            RunRequestData(
                execution_id=run.execution_id,
                agent_id=AGENT,
                user_id=USER,
                input_data={"prompt": "hello"},
                agent_name="Researcher",
                user_name="Ada",
            ),
        ),
        (
            "completed",
            CompletedData(
                execution_id=run.execution_id,
                agent_id=AGENT,
                user_id=USER,
                output_data={"answer": 42},
            ),
        ),
    ]


async def test_an_execution_id_given_is_the_one_used() -> None:
    fake = FakePublisher()
    execution_id = uuid4()

    async with track_execution(
        AGENT, USER, publisher=fake.as_publisher(), execution_id=execution_id
    ) as run:
        pass

    assert run.execution_id == execution_id
    assert [_ids(data) for _, data in fake.published] == [(execution_id, AGENT, USER)] * 2


async def test_a_run_that_raises_is_failed_and_the_exception_propagates() -> None:
    fake = FakePublisher()
    boom = ValueError("boom")
    tracked = track_execution(AGENT, USER, publisher=fake.as_publisher())

    async def work() -> None:
        async with tracked as run:
            run.output = {"steps": 3}
            raise boom

    with pytest.raises(ValueError, match=r"^boom$") as raised:
        await work()

    assert raised.value is boom
    assert fake.kinds == ["started", "failed"]
    assert fake.published[1][1] == FailedData(
        execution_id=tracked.run.execution_id,
        agent_id=AGENT,
        user_id=USER,
        error_message="ValueError: boom",
        output_data={"steps": 3},
    )


@pytest.mark.parametrize(
    ("message", "reason"), [(None, "CancelledError"), ("shutdown", "shutdown")]
)
async def test_a_cancelled_run_is_cancelled_and_the_cancellation_propagates(
    message: str | None, reason: str
) -> None:
    fake = FakePublisher()
    inside = asyncio.Event()
    tracked = track_execution(AGENT, USER, publisher=fake.as_publisher())

    async def work() -> None:
        async with tracked:
            inside.set()
            await asyncio.Event().wait()  # until cancelled

    task = asyncio.create_task(work())
    await inside.wait()
    task.cancel(message)

    with pytest.raises(asyncio.CancelledError):
        await task

    assert task.cancelled()
    assert fake.kinds == ["started", "cancelled"]
    assert fake.published[1][1] == CancelledData(
        execution_id=tracked.run.execution_id, agent_id=AGENT, user_id=USER, reason=reason
    )


async def test_as_a_decorator_each_call_is_an_execution_of_its_own() -> None:
    fake = FakePublisher()

    @track_execution(AGENT, USER, publisher=fake.as_publisher(), agent_name="Counter")
    async def count(text: str, letter: str) -> dict[str, int]:
        return {letter: text.count(letter)}

    assert await count("banana", "a") == {"a": 3}
    assert await count("cherry", letter="r") == {"r": 2}

    assert fake.kinds == ["started", "completed", "started", "completed"]
    ids = [data.execution_id for _, data in fake.published]
    assert ids[0] == ids[1] != ids[2] == ids[3], f"one new execution id per call, got {ids}"
    calls = [
        (ids[0], {"text": "banana", "letter": "a"}, {"a": 3}),
        (ids[2], {"text": "cherry", "letter": "r"}, {"r": 2}),
    ]
    assert [data for _, data in fake.published] == [
        data
        for execution_id, arguments, result in calls
        for data in (
            RunRequestData(
                execution_id=execution_id,
                agent_id=AGENT,
                user_id=USER,
                input_data=arguments,
                agent_name="Counter",
            ),
            CompletedData(
                execution_id=execution_id, agent_id=AGENT, user_id=USER, output_data=result
            ),
        )
    ]


async def test_as_a_decorator_a_given_input_replaces_the_arguments() -> None:
    fake = FakePublisher()

    @track_execution(AGENT, USER, {"task": "summarise"}, publisher=fake.as_publisher())
    async def summarise(document: str) -> str:
        return document[:5]

    assert await summarise("a long document") == "a lon"

    started = fake.published[0][1]
    assert isinstance(started, RunRequestData)
    assert started.input_data == {"task": "summarise"}


async def test_as_a_decorator_an_exception_fails_the_call_and_propagates() -> None:
    fake = FakePublisher()

    @track_execution(AGENT, USER, publisher=fake.as_publisher())
    async def divide(a: int, b: int) -> float:
        return a / b

    with pytest.raises(ZeroDivisionError):
        await divide(1, 0)

    assert fake.kinds == ["started", "failed"]
    failed = fake.published[1][1]
    assert isinstance(failed, FailedData)
    assert failed.error_message == "ZeroDivisionError: division by zero"
    assert divide.__name__ == "divide"


def test_as_a_plain_context_manager_a_run_is_started_then_completed() -> None:
    fake = FakePublisher()

    with track_execution(AGENT, USER, {"q": 1}, publisher=fake.as_publisher()) as run:
        assert fake.kinds == ["started"]
        run.output = "done"

    assert fake.published[1] == (
        "completed",
        CompletedData(
            execution_id=run.execution_id, agent_id=AGENT, user_id=USER, output_data="done"
        ),
    )


@pytest.mark.parametrize(
    ("error", "kind", "text"),
    [
        (ValueError("bad input"), "failed", "ValueError: bad input"),
        (KeyboardInterrupt(), "cancelled", "KeyboardInterrupt"),
    ],
)
def test_as_a_plain_context_manager_an_exception_ends_the_run_and_propagates(
    error: BaseException, kind: str, text: str
) -> None:
    fake = FakePublisher()
    tracked = track_execution(AGENT, USER, publisher=fake.as_publisher())

    with pytest.raises(type(error)) as raised, tracked:
        raise error

    assert raised.value is error
    assert fake.kinds == ["started", kind]
    end = fake.published[1][1]
    assert isinstance(end, FailedData | CancelledData)
    assert (end.error_message if isinstance(end, FailedData) else end.reason) == text


def test_as_a_decorator_of_a_plain_function_each_call_is_an_execution() -> None:
    fake = FakePublisher()

    @track_execution(AGENT, USER, publisher=fake.as_publisher())
    def add(a: int, b: int = 2) -> int:
        return a + b

    assert add(1) == 3
    with pytest.raises(TypeError):
        add("1")  # type: ignore[arg-type]

    assert fake.kinds == ["started", "completed", "started", "failed"]
    started, completed = fake.published[0][1], fake.published[1][1]
    assert isinstance(started, RunRequestData)
    assert started.input_data == {"a": 1}
    assert isinstance(completed, CompletedData)
    assert completed.output_data == 3
    assert fake.published[0][1].execution_id != fake.published[2][1].execution_id
    assert add.__name__ == "add"


def test_ids_that_are_not_uuids_fail_at_once_before_the_run() -> None:
    fake = FakePublisher()

    with pytest.raises(ValidationError, match="agent_id"):
        track_execution("not-a-uuid", USER, publisher=fake.as_publisher())  # type: ignore[arg-type]
    with pytest.raises(ValidationError, match="input_data"):
        track_execution(AGENT, USER, {"when": object()}, publisher=fake.as_publisher())  # type: ignore[dict-item]

    assert fake.published == []


async def test_an_output_that_is_not_json_is_recorded_as_its_repr() -> None:
    fake = FakePublisher()

    class Answer:
        def __repr__(self) -> str:
            return "Answer(42)"

    async with track_execution(AGENT, USER, publisher=fake.as_publisher()) as run:
        run.output = {"answer": Answer()}  # type: ignore[dict-item]

    completed = fake.published[1][1]
    assert isinstance(completed, CompletedData)
    assert completed.output_data == {"answer": "Answer(42)"}


async def test_a_run_is_open_for_heartbeats_only_while_it_runs() -> None:
    fake = FakePublisher()
    tracked = track_execution(AGENT, USER, {"q": 1}, publisher=fake.as_publisher())
    assert fake.heartbeats.open_runs() == []
    async with tracked as run:
        (open_run,) = fake.heartbeats.open_runs()
        assert _ids(open_run) == (run.execution_id, AGENT, USER)
    assert fake.heartbeats.open_runs() == [], "no heartbeat after the run's end"

    def failing_run() -> None:
        with track_execution(AGENT, USER, publisher=fake.as_publisher()):
            assert len(fake.heartbeats.open_runs()) == 1
            raise ValueError("boom")

    with pytest.raises(ValueError, match="boom"):
        failing_run()
    assert fake.heartbeats.open_runs() == [], "a failed sync run is closed too"


@pytest.mark.parametrize(
    ("limit", "expected"), [(None, None), (90, 90_000), (timedelta(seconds=1.5), 1500)]
)
async def test_the_deadline_travels_in_the_started_event(
    limit: float | timedelta | None, expected: int | None
) -> None:
    fake = FakePublisher()
    async with track_execution(AGENT, USER, publisher=fake.as_publisher(), timeout=limit):
        pass
    started = fake.published[0][1]
    assert isinstance(started, RunRequestData)
    assert started.timeout_ms == expected


async def test_one_heartbeat_per_open_run_every_interval() -> None:
    beats = Heartbeats(interval_s=0.01)
    first = ExecutionData(execution_id=uuid4(), agent_id=AGENT, user_id=USER)
    second = ExecutionData(execution_id=uuid4(), agent_id=AGENT, user_id=USER)
    traced = {"traceparent": "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"}
    beats.opened(first, traced)
    beats.opened(second)
    seen: list[UUID] = []

    async def emit(run: ExecutionData, trace: TraceContext) -> None:
        assert trace == (traced if run.execution_id == first.execution_id else None)
        seen.append(run.execution_id)
        if len(seen) == 3:
            beats.closed(second.execution_id)
        if len(seen) == 2:
            raise OSError("a failing heartbeat does not stop the next ones")

    task = asyncio.create_task(beats.beat(emit))
    await asyncio.sleep(0.2)
    task.cancel()
    assert set(seen[:2]) == {first.execution_id, second.execution_id}
    assert seen.count(first.execution_id) >= 5
    assert seen[3:].count(second.execution_id) <= 1, "a closed run stops beating"


# --- What a run carries: model, tags, metadata, usage; and sub-runs ---------------------------


def _started(fake: FakePublisher) -> list[RunRequestData]:
    return [cast(RunRequestData, data) for kind, data in fake.published if kind == "started"]


def _ended(fake: FakePublisher, run: Run) -> ExecutionData:
    (data,) = [
        d for kind, d in fake.published if kind != "started" and d.execution_id == run.execution_id
    ]
    return data


async def test_model_tags_and_metadata_travel_in_the_started_event() -> None:
    fake = FakePublisher()
    async with track_execution(
        AGENT,
        USER,
        publisher=fake.as_publisher(),
        model="gpt-4o",
        tags=("search", "eu"),
        metadata={"env": "prod", "attempt": 2, "cached": False, "temperature": 0.2},
    ):
        pass
    (started,) = _started(fake)
    assert (started.model, started.tags, started.metadata, started.parent_execution_id) == (
        "gpt-4o",
        ["search", "eu"],
        {"env": "prod", "attempt": 2, "cached": False, "temperature": 0.2},
        None,
    )


def test_metadata_the_contract_cannot_take_fails_at_once_before_the_run() -> None:
    fake = FakePublisher()
    with pytest.raises(ValidationError):
        track_execution(AGENT, USER, publisher=fake.as_publisher(), metadata={"n": [1]})  # type: ignore[dict-item]
    assert fake.published == []


async def test_a_run_entered_inside_another_is_its_child_in_the_same_task_and_in_child_tasks() -> (
    None
):
    fake = FakePublisher()
    publisher = fake.as_publisher()
    async with track_execution(AGENT, USER, publisher=publisher) as root:
        async with (
            track_execution(AGENT, USER, publisher=publisher) as child,
            track_execution(AGENT, USER, publisher=publisher) as grandchild,
        ):
            pass

        async def tool() -> Run:
            async with track_execution(AGENT, USER, publisher=publisher) as run:
                return run

        in_task = await asyncio.create_task(tool())
        in_thread = await asyncio.to_thread(_sync_run, publisher)
        explicit = uuid4()
        async with track_execution(
            AGENT, USER, publisher=publisher, parent_execution_id=explicit
        ) as adopted:
            pass
    async with track_execution(AGENT, USER, publisher=publisher) as after:
        pass

    parents = {data.execution_id: data.parent_execution_id for data in _started(fake)}
    assert parents == {
        root.execution_id: None,
        child.execution_id: root.execution_id,
        grandchild.execution_id: child.execution_id,
        in_task.execution_id: root.execution_id,
        in_thread.execution_id: root.execution_id,
        adopted.execution_id: explicit,
        after.execution_id: None,
    }


def _sync_run(publisher: Publisher) -> Run:
    with track_execution(AGENT, USER, publisher=publisher) as run:
        return run


async def test_concurrent_sibling_runs_each_have_the_same_parent() -> None:
    fake = FakePublisher()
    publisher = fake.as_publisher()

    async def step() -> UUID:
        async with track_execution(AGENT, USER, publisher=publisher) as run:
            await asyncio.sleep(0.01)  # the siblings interleave
            return run.execution_id

    async with track_execution(AGENT, USER, publisher=publisher) as root:
        siblings = await asyncio.gather(*(step() for _ in range(3)))
    parents = {data.execution_id: data.parent_execution_id for data in _started(fake)}
    assert [parents[s] for s in siblings] == [root.execution_id] * 3


async def test_the_usage_a_run_sets_or_adds_up_travels_in_its_end_event() -> None:
    fake = FakePublisher()
    publisher = fake.as_publisher()
    async with track_execution(AGENT, USER, publisher=publisher) as set_once:
        set_once.usage = Usage(input_tokens=10, output_tokens=2, cost=Cost(amount=Decimal("0.5")))
    async with track_execution(AGENT, USER, publisher=publisher) as added:
        added.add_usage(input_tokens=100, output_tokens=20, cost="0.0012")
        added.add_usage(input_tokens=50, cost=Decimal("0.0003"))
        added.add_usage(output_tokens=-1)  # not a count: left out, logged
        added.add_usage(cost="0.1", currency="EUR")  # another currency: left out, logged
        added.add_usage(cost="a lot")  # not a decimal: left out, logged
    async with track_execution(AGENT, USER, publisher=publisher) as without:
        pass

    assert cast(CompletedData, _ended(fake, set_once)).usage == Usage(
        input_tokens=10, output_tokens=2, cost=Cost(amount=Decimal("0.5"), currency="USD")
    )
    assert cast(CompletedData, _ended(fake, added)).usage == Usage(
        input_tokens=150, output_tokens=20, cost=Cost(amount=Decimal("0.0015"))
    )
    assert cast(CompletedData, _ended(fake, without)).usage is None


async def test_a_usage_the_contract_cannot_take_is_left_out_and_the_run_still_ends() -> None:
    fake = FakePublisher()
    async with track_execution(AGENT, USER, publisher=fake.as_publisher()) as run:
        run.output = "done"
        run.usage = {"input_tokens": -5}  # type: ignore[assignment]
    end = cast(CompletedData, _ended(fake, run))
    assert (end.output_data, end.usage) == ("done", None)


def test_as_a_decorator_each_call_carries_the_details_and_nests() -> None:
    fake = FakePublisher()
    publisher = fake.as_publisher()

    @track_execution(AGENT, USER, publisher=publisher, model="m", tags=["t"])
    def inner(x: int) -> int:
        return x

    with track_execution(AGENT, USER, publisher=publisher) as outer:
        inner(1)
    root, call = _started(fake)
    assert (call.model, call.tags, call.parent_execution_id) == ("m", ["t"], outer.execution_id)
    assert root.execution_id == outer.execution_id
