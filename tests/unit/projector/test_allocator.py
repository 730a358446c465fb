"""projector/allocator.py: with the threshold fixed, a big block freed does not move later big
blocks into the heap, where they would stay once freed."""

from __future__ import annotations

import os
import subprocess
import sys
from types import SimpleNamespace
from typing import Any, cast

import pytest

from agent_history.projector import shares

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
    # Without the variables that would set glibc's threshold from outside.
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MALLOC_", "GLIBC_TUNABLES"))}
    done = subprocess.run(
        [sys.executable, "-c", _PROBE, mode], capture_output=True, text=True, check=True, env=env
    )
    return int(done.stdout)


def test_a_big_block_is_mapped_on_its_own_even_after_a_bigger_one_was_freed() -> None:
    assert _mapped_bytes_of_a_mib("fixed") >= 1 << 20


def test_without_it_glibc_would_serve_the_block_from_the_heap() -> None:
    # What the setting is for: glibc's dynamic threshold, raised by the freed 4 MiB.
    assert _mapped_bytes_of_a_mib("default") == 0


def test_a_replay_loader_process_fixes_the_threshold_before_it_loads(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    calls: list[str] = []

    async def load(share: object, progress: object) -> Any:
        calls.append("load")
        return SimpleNamespace(events=3, invalid=0, dropped=0)

    monkeypatch.setattr(shares, "map_big_blocks", lambda: calls.append("map"))
    monkeypatch.setattr(shares, "_load", load)

    share = cast(shares.Share, SimpleNamespace())
    assert shares.load_share(share, lambda done, total: None) == (3, 0, 0)
    assert calls == ["map", "load"]
