"""An API worker process freezes what it holds for good once its app is built (bootstrap.py)."""

from __future__ import annotations

import os
import subprocess
import sys

_WORKER = """
import gc
from agent_history.server.bootstrap import api_from_environment

before = gc.get_freeze_count()
api_from_environment()
print(before, gc.get_freeze_count())
"""


def test_a_worker_leaves_its_app_out_of_the_cyclic_collectors_scans() -> None:
    # A process of its own: a frozen test process would never collect its own cycles again.
    environment = {k: v for k, v in os.environ.items() if not k.startswith("AGENT_HISTORY_")}
    environment["AGENT_HISTORY_DATABASE_URL"] = "postgresql+asyncpg://u:p@127.0.0.1:1/none"
    done = subprocess.run(
        [sys.executable, "-c", _WORKER], env=environment, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr
    before, frozen = map(int, done.stdout.split())
    assert before == 0
    # The modules, the app, its routes and their models: tens of thousands of objects.
    assert frozen > 20_000
