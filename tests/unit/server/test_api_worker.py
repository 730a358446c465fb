"""An API worker process freezes what it holds for good once its app is built (bootstrap.py)."""

from __future__ import annotations

import os
import subprocess
import sys

_WORKER = """
import gc
from agent_history.server.bootstrap import api_from_environment

before = gc.get_freeze_count()
app = api_from_environment()
# gc.get_objects() leaves frozen objects out: the app built before the freeze is among them.
print(before, gc.get_freeze_count(), gc.is_tracked(app), any(o is app for o in gc.get_objects()))
"""


def test_a_worker_leaves_its_app_out_of_the_cyclic_collectors_scans() -> None:
    # A process of its own: a frozen test process would never collect its own cycles again.
    environment = {
        k: v for k, v in os.environ.items() if not k.startswith(("AGENT_HISTORY_", "OTEL_"))
    }
    environment["AGENT_HISTORY_DATABASE_URL"] = "postgresql+asyncpg://u:p@127.0.0.1:1/none"
    done = subprocess.run(
        [sys.executable, "-c", _WORKER],
        env=environment,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    before, frozen, tracked, scanned = done.stdout.split()
    assert (int(before), tracked, scanned) == (0, "True", "False")
    assert int(frozen) > 0
