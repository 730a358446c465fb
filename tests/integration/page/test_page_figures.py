"""What the page costs and how it is used: first-load bytes and time to interactive of the
history page (printed, and held under the issue's limits), a 375 px wide screen, the keyboard,
and the screenshots of docs/ (written there when AGENT_HISTORY_SCREENSHOTS names a folder)."""

from __future__ import annotations

import asyncio
import os
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from playwright.async_api import BrowserContext, Page

from agent_history.api.settings import ApiSettings
from agent_history.producer import Publisher
from tests.integration.page.conftest import ready
from tests.integration.page.runs import Spec, projected, publish, signed_in

pytestmark = pytest.mark.integration

FIRST_LOAD_LIMIT = 200_000
INTERACTIVE_LIMIT_MS = 1000


async def some_history(
    publisher: Publisher, api_settings: ApiSettings, base: str
) -> tuple[uuid.UUID, uuid.UUID, uuid.UUID]:
    agent_id, user_id = uuid.uuid4(), uuid.uuid4()
    root: uuid.UUID | None = None
    now = datetime.now(UTC)
    for i, status in enumerate(["completed", "failed", "completed", "cancelled", "completed"] * 6):
        spec = Spec(user_id, status, tags=["prod"] if i % 2 else [], parent=root if i < 4 else None)
        spec.output_data = {"answer": f"result {i}", "sources": [f"doc-{j}" for j in range(3)]}
        # Runs over the last week, taking 0.4 s to a minute, as a real agent's would; the
        # first one's three sub-runs inside it.
        spec.started_at = now - timedelta(hours=5.3 * (30 - max(i, 3)), seconds=-12 * i)
        spec.took = timedelta(milliseconds=400 + (i * 7919) % 60_000 if i else 62_000)
        spec.model = ("gpt-4o", "claude-sonnet-4", "gpt-4o-mini")[i % 3]
        made = await publish(publisher, agent_id, spec)
        root = root or made
    await projected(api_settings, base, agent_id, 30)
    assert root is not None
    return agent_id, user_id, root


async def test_first_load_is_small_and_quick(
    browser: BrowserContext, api_settings: ApiSettings, page_url: str, publisher: Publisher
) -> None:
    agent_id, user_id, _ = await some_history(publisher, api_settings, page_url)
    path = f"/ui/agents/{agent_id}"
    page = await signed_in(browser, api_settings, page_url, user_id, path)
    cdp = await browser.new_cdp_session(page)
    await cdp.send("Network.clearBrowserCache")
    await page.goto(page_url + path)
    await ready(page, "history")
    figures = await page.evaluate(
        """() => {
        const nav = performance.getEntriesByType("navigation")[0];
        const all = [nav, ...performance.getEntriesByType("resource")];
        const mark = performance.getEntriesByName("ah:interactive:history")[0];
        return {bytes: all.reduce((n, e) => n + e.transferSize, 0), requests: all.length,
                interactive: mark.startTime, dcl: nav.domContentLoadedEventEnd};
    }"""
    )
    print(f"\nhistory page, first load: {figures}")
    assert figures["bytes"] < FIRST_LOAD_LIMIT, figures
    assert figures["interactive"] < INTERACTIVE_LIMIT_MS, figures


async def test_a_narrow_screen_and_the_keyboard_reach_a_run(
    browser: BrowserContext, api_settings: ApiSettings, page_url: str, publisher: Publisher
) -> None:
    agent_id, user_id, _ = await some_history(publisher, api_settings, page_url)
    page = await signed_in(browser, api_settings, page_url, user_id, f"/ui/agents/{agent_id}")
    await page.set_viewport_size({"width": 375, "height": 800})
    width = await page.evaluate("document.documentElement.scrollWidth")
    assert width <= 375, f"the page is {width} px wide at 375 px"
    for _ in range(60):
        await page.keyboard.press("Tab")
        if await page.evaluate("!!document.activeElement.closest('#runs tbody')"):
            break
    else:
        raise AssertionError("Tab never reached a run in the table")
    await page.keyboard.press("Enter")
    await ready(page, "detail")
    width = await page.evaluate("document.documentElement.scrollWidth")
    assert width <= 375, f"the detail is {width} px wide at 375 px"


async def shoot(page: Page, folder: Path, name: str) -> None:
    for scheme in ("light", "dark"):
        await page.emulate_media(color_scheme=scheme)
        await page.screenshot(path=folder / f"{name}-{scheme}.png", full_page=False)


async def test_screenshots_of_the_three_pages_light_and_dark(
    browser: BrowserContext,
    api_settings: ApiSettings,
    page_url: str,
    publisher: Publisher,
    tmp_path: Path,
) -> None:
    folder = Path(os.environ.get("AGENT_HISTORY_SCREENSHOTS") or tmp_path)
    await asyncio.to_thread(folder.mkdir, parents=True, exist_ok=True)
    agent_id, user_id, root = await some_history(publisher, api_settings, page_url)
    now = datetime.now(UTC)
    for name, runs in (("Research assistant", 9), ("Code reviewer", 4)):
        other = uuid.uuid4()
        for i in range(runs):
            at = now - timedelta(hours=31 * i + 2)
            took = timedelta(seconds=3 + i * 4)
            status = "failed" if i % 4 == 3 else "completed"
            spec = Spec(user_id, status, agent_name=name, started_at=at, took=took)
            await publish(publisher, other, spec)
        await projected(api_settings, page_url, other, runs)
    page = await signed_in(browser, api_settings, page_url, user_id, f"/ui/agents/{agent_id}")
    await shoot(page, folder, "history")
    await page.goto(f"{page_url}/ui/executions/{root}")
    await ready(page, "detail")
    await shoot(page, folder, "detail")
    await page.goto(f"{page_url}/ui/")
    await ready(page, "agents")
    await shoot(page, folder, "agents")
    assert len(await asyncio.to_thread(lambda: list(folder.glob("*.png")))) >= 6
