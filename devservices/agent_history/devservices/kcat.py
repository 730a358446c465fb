"""kcat, the command-line Kafka client of the README's examples, from the distribution."""

from __future__ import annotations

import shutil
from pathlib import Path

from agent_history.devservices import processes
from agent_history.devservices.processes import ServicesError
from agent_history.devservices.settings import ServicesSettings


def install(settings: ServicesSettings) -> Path:
    """The kcat program, installing Debian's `kcat` package when root and missing."""
    found = shutil.which("kcat")
    if found is None:
        with processes.exclusive(settings.state_dir, "kcat-install"):
            found = shutil.which("kcat")  # another process may have installed it meanwhile
            if found is None and processes.apt_install(["kcat"], what="installing kcat"):
                found = shutil.which("kcat")
    if found is None:
        raise ServicesError(
            "kcat not found: install it (Debian/Ubuntu: `sudo apt-get install kcat`; "
            "macOS: `brew install kcat`) or put it on PATH"
        )
    return Path(found)
