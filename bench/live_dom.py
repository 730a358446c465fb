"""The live-update benchmark's browser end: a headless Chromium tab on an agent's history page.

The tab signs in through a one-time login link (as the page's tests do), opens
``/ui/agents/{id}`` and waits for the page to draw it; a ``MutationObserver`` installed through
``page.evaluate`` then notes ``(run id, status, Date.now())`` whenever a row's ``data-status``
becomes terminal, or a row arrives already terminal. The benchmark drains those notes every
``_POLL`` seconds, so the time is the page's own (when the DOM changed), not when Python heard
of it; both ends read the same machine's wall clock (``Date.now()`` and ``time.time()``).

Chromium is Debian's (``/usr/bin/chromium``), driven by Playwright, which downloads nothing.
"""

from __future__ import annotations

import asyncio
import tempfile
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from playwright.async_api import async_playwright

from agent_history.api.login import login_url, mint_login_code
from agent_history.api.settings import ApiSettings
from agent_history.contract.statuses import TERMINAL_STATUSES
from agent_history.devservices import chromium
from agent_history.devservices.settings import ServicesSettings

_POLL = 0.2

# Watches the whole body (a reset makes the page draw the history again, with a new table).
_OBSERVE = """terminal => {
  const done = new Set(terminal);
  window.__seen = [];
  window.__draws = 0;
  const note = (tr, now) => {
    if (tr.nodeType === 1 && tr.matches("tr[data-id]") && done.has(tr.dataset.status))
      window.__seen.push([tr.dataset.id, tr.dataset.status, now]);
  };
  new MutationObserver((records) => {
    const now = Date.now();
    for (const r of records) {
      if (r.type === "attributes") note(r.target, now);
      else for (const n of r.addedNodes) {
        note(n, now);
        if (n.nodeType !== 1) continue;
        n.querySelectorAll("tr[data-id]").forEach((tr) => note(tr, now));
        if (n.matches("table#runs") || n.querySelector("table#runs")) window.__draws += 1;
      }
    }
  }).observe(document.body, {
    subtree: true, childList: true, attributes: true, attributeFilter: ["data-status"],
  });
}"""
_DRAIN = "() => [window.__seen.splice(0), window.__draws]"


@dataclass
class BrowserWatcher:
    """Follows one agent's history page in a tab; calls ``seen(run, when)`` for each run whose
    row turns terminal, ``when`` in ``time.time()`` seconds (the page's ``Date.now()``)."""

    base: str
    agent: uuid.UUID
    settings: ApiSettings
    seen: Callable[[str, float], None]
    chromium: Path = field(default_factory=lambda: chromium.install(ServicesSettings()))
    resets: int = 0  # times the page drew the history again (a reset from the stream)
    opened: asyncio.Event = field(default_factory=asyncio.Event)

    async def run(self) -> None:
        code = mint_login_code(self.settings, uuid.uuid4(), all_scope=True)
        with tempfile.TemporaryDirectory(prefix="bench-chromium-") as profile:
            async with async_playwright() as playwright:
                context = await playwright.chromium.launch_persistent_context(
                    profile,
                    executable_path=str(self.chromium),
                    args=chromium.HEADLESS_ARGS,
                    viewport={"width": 1280, "height": 900},
                )
                try:
                    page = await context.new_page()
                    path = f"/ui/agents/{self.agent}"
                    await page.goto(login_url(self.base, code, path))
                    ready = "body[data-ready=history]"
                    await page.wait_for_selector(ready, state="attached", timeout=30_000)
                    await page.wait_for_selector("#live.on", state="attached", timeout=30_000)
                    await page.evaluate(_OBSERVE, sorted(TERMINAL_STATUSES))
                    self.opened.set()
                    while True:
                        await asyncio.sleep(_POLL)
                        notes, self.resets = await page.evaluate(_DRAIN)
                        for run, _status, ms in notes:
                            self.seen(run, ms / 1000)
                finally:
                    await context.close()
