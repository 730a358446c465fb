"""projector/allocator.py: with the threshold fixed, a big block freed does not move later big
blocks into the heap, where they would stay once freed."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager

import pytest
from typer.testing import CliRunner

from agent_history.projector import allocator
from agent_history.projector.replay import ReplayResult
from agent_history.server import bootstrap, cli

# In a process of its own: the setting lasts for the process. Prints how many bytes of
# separately mapped blocks a 1 MiB buffer added, after a 4 MiB buffer was freed (which raises
# glibc's dynamic threshold to 4 MiB).
_PROBE = """
import ctypes, sys
from agent_history.projector.allocator import map_big_blocks

class Info(ctypes.Structure):
    _fields_ = [(name, ctypes.c_size_t) for name in (
        "arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks", "uordblks",
        "fordblks", "keepcost")]

mallinfo2 = ctypes.CDLL(None).mallinfo2
mallinfo2.restype = Info
if sys.argv[1] == "fixed":
    assert map_big_blocks()
big = bytearray(4 << 20)
del big
before = mallinfo2().hblkhd
block = bytearray(1 << 20)
print(mallinfo2().hblkhd - before)
"""


def _mapped_bytes_of_a_mib(mode: str) -> int:
    done = subprocess.run(
        [sys.executable, "-c", _PROBE, mode], capture_output=True, text=True, check=True
    )
    return int(done.stdout)


def test_a_big_block_is_mapped_on_its_own_even_after_a_bigger_one_was_freed() -> None:
    assert _mapped_bytes_of_a_mib("fixed") >= 1 << 20


def test_without_it_glibc_would_serve_the_block_from_the_heap() -> None:
    # What the setting is for: glibc's dynamic threshold, raised by the freed 4 MiB.
    assert _mapped_bytes_of_a_mib("default") == 0


def _calls_of(monkeypatch: pytest.MonkeyPatch, args: list[str], calls: list[str]) -> list[str]:
    """``calls`` after ``agent-history ARGS`` ran, its builder (bootstrap.py) faked by the test:
    when the threshold was set ("map") among what the fake noted."""

    def keep_the_tests_logging(level: str = "INFO") -> None:
        """The command would give the root logger a handler on the runner's stderr."""

    monkeypatch.setattr(allocator, "map_big_blocks", lambda: calls.append("map"))
    monkeypatch.setattr(cli, "_logging", keep_the_tests_logging)
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
