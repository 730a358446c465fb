"""A run's detail in a real browser: its fields, collapsible JSON (large payloads too) and its
tree of sub-runs."""

from __future__ import annotations

import time
import uuid

import pytest
from playwright.async_api import BrowserContext

from agent_history.api.settings import ApiSettings
from agent_history.producer import Publisher
from tests.integration.page.conftest import ready
from tests.integration.page.runs import Spec, projected, publish, signed_in

pytestmark = pytest.mark.integration


async def test_a_runs_detail_shows_its_fields_json_and_tree(
    browser: BrowserContext, api_settings: ApiSettings, page_url: str, publisher: Publisher
) -> None:
    agent_id, user_id = uuid.uuid4(), uuid.uuid4()
    big = {"rows": [{"n": i, "text": "x" * 40} for i in range(8_000)]}
    root = await publish(
        publisher, agent_id, Spec(user_id, tags=["plan"], input_data={"q": "why"}, output_data=big)
    )
    child = await publish(publisher, agent_id, Spec(user_id, "failed", parent=root))
    await publish(publisher, agent_id, Spec(user_id, parent=child))
    await publish(publisher, agent_id, Spec(user_id, parent=root))
    await projected(api_settings, page_url, agent_id, 4)
    page = await signed_in(browser, api_settings, page_url, user_id, f"/ui/agents/{agent_id}")

    began = time.monotonic()
    await page.click(f"#runs tr[data-id='{root}'] a")
    await ready(page, "detail")
    drawn = time.monotonic() - began
    assert drawn < 3, f"a detail with a 8,000-row output took {drawn:.2f} s to draw"
    assert f"/ui/executions/{root}" in page.url
    assert "plan" in (await page.text_content("main") or "")
    assert '"why"' in (await page.text_content("#input") or "")
    # The big output is folded: its first level shows, its 8,000 rows only on demand, by 100.
    await page.click("#output .json > div > ul > li button.toggle")
    assert await page.locator("#output .json li").count() < 200
    await page.click("#output button.more")
    assert await page.locator("#output .json li").count() < 300

    tree = page.locator("#tree li")
    assert await tree.count() == 4
    depths = await tree.evaluate_all("ls => ls.map(l => Number(l.dataset.depth))")
    assert depths == [0, 1, 2, 1]
    await page.click(f"#tree li[data-id='{child}'] a")
    await ready(page, "detail")
    assert "ToolError: boom" in (await page.text_content("#error") or "")
    await page.go_back()
    await ready(page, "detail")
    assert f"/ui/executions/{root}" in page.url
