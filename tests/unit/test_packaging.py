"""Agent workers install the base package only: the producer must not need the server side."""

from __future__ import annotations

import subprocess
import sys
import tomllib
from pathlib import Path

SERVER_ONLY = ("sqlalchemy", "fastapi", "asyncpg", "alembic", "uvicorn", "orjson", "rich")
ROOT = Path(__file__).resolve().parents[2]


def test_base_dependencies_leave_out_the_server_libraries() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    base = " ".join(project["dependencies"]).lower()
    assert [lib for lib in SERVER_ONLY if lib in base] == []
    server = " ".join(project["optional-dependencies"]["server"]).lower()
    assert all(lib in server for lib in SERVER_ONLY)


# Makes the server-only libraries impossible to import, as in a base-only install.
_WITHOUT_SERVER_LIBRARIES = f"""
import importlib.abc, sys

class Absent(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in {SERVER_ONLY!r}:
            raise ModuleNotFoundError(name)
        return None

sys.meta_path.insert(0, Absent())
from agent_history.settings import ProducerSettings
from producer import Publisher, track_execution
Publisher(ProducerSettings())
print("ok")
"""


def test_the_producer_works_without_the_server_libraries() -> None:
    out = subprocess.run(
        [sys.executable, "-c", _WITHOUT_SERVER_LIBRARIES],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "ok"
