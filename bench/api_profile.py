"""Where the API process spends its CPU under load: py-spy samples, grouped by what they do.

py-spy is not a project dependency: install it by hand (`uv pip install py-spy` into .venv, or
`.venv/bin/python -m pip install py-spy` where the venv has pip). A sample goes to the first
group in STEPS that any frame of its stack belongs to, so library code is charged to the step
of the request that called it (asyncpg under the pool's pre-ping to the pre-ping, pydantic
under FastAPI's parameter handling to the parameters); a sample in none of them goes to the
generic layer its innermost frame is in (LAYERS): uvicorn, Starlette and FastAPI's routing,
or the event loop and native code (uvloop, httptools and Cython run below any Python frame).
"""

from __future__ import annotations

import asyncio
import shutil
import sys
from collections import Counter
from collections.abc import Awaitable
from dataclasses import dataclass
from pathlib import Path

from bench.stacks import summarise

RATE = 250  # samples per second

# (group, substrings of a py-spy frame "function (path:line)"), in priority order.
STEPS: tuple[tuple[str, tuple[str, ...]], ...] = (
    (
        "sync dependencies run in the thread pool (hand-off and worker threads)",
        ("run_in_threadpool", "anyio/", "Thread._bootstrap"),
    ),
    ("uvicorn access log (logging)", ("logging/", "uvicorn/logging.py")),
    ("JWT verification (PyJWT)", ("jwt/", "api/auth.py")),
    ("cursor encoding (HMAC)", ("api/cursor.py",)),
    ("pool pre-ping (a SELECT per checkout)", ("_async_ping", "do_ping")),
    ("new database connections (pool overflow)", ("connect_utils.py", "dbapi_connection.create")),
    ("query parameters and dependencies (FastAPI)", ("fastapi/dependencies/", "api/parameters.py")),
    ("rows to JSON (api/render.py, orjson)", ("api/render.py",)),
    (
        "response validation and JSON (FastAPI serialize_response)",
        ("serialize_response", "pydantic"),
    ),
    ("BEGIN / COMMIT / ROLLBACK (asyncpg transactions)", ("asyncpg/transaction.py",)),
    ("asyncpg (statements, codecs)", ("asyncpg/",)),
    (
        "SQLAlchemy (building SQL, executing, rows)",
        ("sqlalchemy/", "api/queries.py", "api/stats.py"),
    ),
)
IDLE = "idle worker threads (blocked waiting for work; py-spy still samples them)"
LAYERS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("HTTP protocol (uvicorn)", ("uvicorn/", "httptools")),
    ("routing and middleware (Starlette, FastAPI)", ("starlette/", "fastapi/", "api/")),
    ("event loop and native code (uvloop, httptools, Cython)", ("asyncio/", "uvloop")),
)


@dataclass(frozen=True)
class Profile:
    label: str
    samples: int
    seconds: float
    groups: list[tuple[str, float]]  # share of samples, largest first
    frames: list[tuple[str, float]]  # notable project and pool frames, inclusive share


def py_spy() -> str | None:
    beside = Path(sys.executable).with_name("py-spy")
    return str(beside) if beside.exists() else shutil.which("py-spy")


async def record(
    binary: str, pid: int, seconds: int, output: Path, load: Awaitable[object]
) -> None:
    """Sample ``pid`` for ``seconds`` while ``load`` runs."""
    spy = await asyncio.create_subprocess_exec(
        *(binary, "record", "--pid", str(pid), "--rate", str(RATE), "--format", "raw"),
        *("--duration", str(seconds), "--nonblocking", "--subprocesses", "--output", str(output)),
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.DEVNULL,
    )
    await asyncio.gather(load, spy.wait())


def summarise_profile(label: str, path: Path, seconds: float) -> Profile:
    total, inclusive, _ = summarise(path)
    grouped: Counter[str] = Counter()
    for line in path.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        grouped[_group([frame for frame in stack.split(";") if frame])] += int(count)
    notable = [
        (frame, n / total)
        for frame, n in inclusive.most_common()
        if any(key in frame for key in ("(api/", "_checkout", "ping", "threadpool"))
        and not any(key in frame for key in ("(api/app.py)", "(api/problems.py)"))
    ]
    groups = [(group, n / total) for group, n in grouped.most_common()] if total else []
    return Profile(label, total, seconds, groups, notable[:12])


def _group(frames: list[str]) -> str:
    if not frames:
        return "no Python frame (native threads)"
    if frames[0].startswith("Thread._bootstrap") and any(
        wait in frames[-1] for wait in ("Condition.wait", "Queue.get", "Event.wait")
    ):
        return IDLE
    for group, keys in STEPS:
        if any(key in frame for frame in frames for key in keys):
            return group
    for group, keys in LAYERS:
        if any(key in frames[-1] for key in keys):
            return group
    return "other"
