"""Agent workers install the base package only: the producer must not need the server side."""

from __future__ import annotations

import subprocess
import sys
import tomllib
from pathlib import Path

SERVER_ONLY = ("sqlalchemy", "fastapi", "asyncpg", "alembic", "uvicorn", "orjson", "rich")
ROOT = Path(__file__).resolve().parents[2]


def _dependencies(member: str) -> str:
    project = tomllib.loads((ROOT / member / "pyproject.toml").read_text())["project"]
    return " ".join(project["dependencies"]).lower()


def test_base_dependencies_leave_out_the_server_libraries() -> None:
    worker = _dependencies("producer") + " " + _dependencies("contract")
    assert [lib for lib in SERVER_ONLY if lib in worker] == []
    server = " ".join(_dependencies(m) for m in ("migrations", "projector", "api", "server"))
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
from agent_history.producer.settings import ProducerSettings
from agent_history.producer import Publisher, track_execution
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
