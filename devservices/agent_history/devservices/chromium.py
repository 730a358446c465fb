"""Debian's Chromium, the browser the page's end-to-end tests drive (through Playwright, which
is told where it is: nothing is downloaded by Playwright itself)."""

from __future__ import annotations

import shutil
from pathlib import Path

from agent_history.devservices import processes
from agent_history.devservices.processes import ServicesError
from agent_history.devservices.settings import ServicesSettings

# chromium-driver comes along for clients that drive the browser through WebDriver.
PACKAGES = ["chromium", "chromium-driver"]
# How the tests and benchmarks start it: headless, as root, and without the background
# connections that this machine's closed network refuses (many at a time, at every start).
HEADLESS_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
]


def _find() -> Path | None:
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    return Path(found) if found else None


def install(settings: ServicesSettings) -> Path:
    """The chromium program, installing Debian's packages when root and missing."""
    found = _find()
    if found is None:
        with processes.exclusive(settings.state_dir, "chromium-install"):
            found = _find()  # another process may have installed it meanwhile
            if found is None and processes.apt_install(PACKAGES, what="installing Chromium"):
                found = _find()
    if found is None:
        raise ServicesError(
            "chromium not found: install it (Debian/Ubuntu: `sudo apt-get install chromium "
            "chromium-driver`) or put it on PATH"
        )
    return found
