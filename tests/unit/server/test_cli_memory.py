"""The projector's commands bound its memory (projector/allocator.py) before they start."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager

import pytest
from typer.testing import CliRunner

from agent_history.projector import allocator
from agent_history.projector.replay import ReplayResult
from agent_history.server import bootstrap, cli, tracing


def _calls_of(monkeypatch: pytest.MonkeyPatch, args: list[str], calls: list[str]) -> list[str]:
    """``calls`` after ``agent-history ARGS`` ran, its builder (bootstrap.py) faked by the test:
    when the threshold was set ("map") among what the fake noted."""

    def keep_the_tests_logging(level: str = "INFO") -> None:
        """The command would give the root logger a handler on the runner's stderr."""

    monkeypatch.setattr(allocator, "map_big_blocks", lambda: calls.append("map"))
    monkeypatch.setattr(cli, "_logging", keep_the_tests_logging)
    # Nor a global tracer provider, should the environment ask for an exporter.
    monkeypatch.setattr(tracing, "configure_tracing", lambda service: None)
    result = CliRunner().invoke(cli.app, args)
    assert result.exit_code == 0, result.output
    return calls


def test_the_projector_command_fixes_the_threshold_before_it_projects(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    calls: list[str] = []

    @asynccontextmanager
    async def build_projector(settings: object) -> AsyncIterator[object]:
        async def project(stop: asyncio.Event) -> None:
            calls.append("project")

        yield project

    monkeypatch.setattr(bootstrap, "build_projector", build_projector)
    assert _calls_of(monkeypatch, ["projector"], calls) == ["map", "project"]


def test_the_replay_command_fixes_the_threshold_before_it_loads(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    calls: list[str] = []

    @asynccontextmanager
    async def build_replay(
        settings: object, progress: object, metrics_port: int
    ) -> AsyncIterator[Callable[[], Awaitable[ReplayResult]]]:
        async def run_replay() -> ReplayResult:
            calls.append("replay")
            return ReplayResult(events=3, invalid=0, executions=1, pruned=0)

        yield run_replay

    monkeypatch.setattr(bootstrap, "build_replay", build_replay)
    assert _calls_of(monkeypatch, ["replay", "--metrics-port", "0"], calls) == ["map", "replay"]
