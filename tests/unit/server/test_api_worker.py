"""An API worker process freezes what it holds for good once its app is built (bootstrap.py)."""

from __future__ import annotations

import gc
import os
import subprocess
import sys

from agent_history.api.app import create_app
from agent_history.api.settings import ApiSettings

# A database the app is never asked to reach: building it connects to nothing.
UNREACHABLE = "postgresql+asyncpg://u:p@127.0.0.1:1/none"

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
    environment["AGENT_HISTORY_DATABASE_URL"] = UNREACHABLE
    done = subprocess.run(
        [sys.executable, "-c", _WORKER],
        env=environment,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    before, frozen, tracked, scanned = done.stdout.splitlines()[-1].split()
    assert (int(before), tracked, scanned) == (0, "True", "False")
    assert int(frozen) > 0


def test_building_an_app_freezes_nothing() -> None:
    # What the tests and any embedding process call: their cycles stay collectable.
    before = gc.get_freeze_count()
    create_app(ApiSettings(database_url=UNREACHABLE))
    assert gc.get_freeze_count() == before
