"""The agents overview and the charts against the documented shapes of GET /agents and of the
stats series, answered by the test (these endpoints may land after the page); the rest of the
page is the real API."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from playwright.async_api import BrowserContext, Route

from agent_history.api.settings import ApiSettings
from agent_history.producer import Publisher
from tests.integration.page.conftest import ready
from tests.integration.page.runs import Spec, projected, publish, signed_in

pytestmark = pytest.mark.integration


def point(start: datetime, completed: int, failed: int, p50: int, p95: int) -> dict[str, Any]:
    counts = dict.fromkeys(("pending", "running", "cancelled", "timed_out"), 0)
    durations = {"count": completed + failed, "p50": p50, "p95": p95, "p99": p95, "max": p95}
    tokens = {"sum": 0, "count": 0, "average": None}
    return {
        "start": start.isoformat(),
        "total": completed + failed,
        "counts": {**counts, "completed": completed, "failed": failed},
        "success_rate": completed / (completed + failed) if completed + failed else None,
        "execution_time_ms": durations,
        "tokens": {"input": tokens, "output": tokens},
        "cost": {},
    }


async def test_the_overview_and_the_charts_draw_the_documented_shapes(
    browser: BrowserContext, api_settings: ApiSettings, page_url: str, publisher: Publisher
) -> None:
    agent_id, user_id = uuid.uuid4(), uuid.uuid4()
    await publish(publisher, agent_id, Spec(user_id))
    await projected(api_settings, page_url, agent_id, 1)
    day = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    # Day 5 had no runs: the series leaves it out, the charts keep its place.
    series = [
        point(day - timedelta(days=13 - i), i, i % 3, 100 * i, 250 * i) for i in range(14) if i != 5
    ]
    per_day = ", ".join("0" if i == 5 else str(i + i % 3) for i in range(14))
    overview = {
        "agents": [
            {
                "id": str(agent_id),
                "name": "Browser agent",
                "total": 1,
                "success_rate": 1.0,
                "p95_ms": 2,
                "last_run_at": day.isoformat(),
            }
        ],
        "total": 1,
        "limit": 60,
        "offset": 0,
        "percentiles": "exact",
    }

    async def answer(route: Route) -> None:
        if "/executions/stats" in route.request.url:
            body: dict[str, Any] = {"agent_id": str(agent_id), "series": series}
        else:
            body = overview
        await route.fulfill(status=200, content_type="application/json", body=json.dumps(body))

    page = await signed_in(browser, api_settings, page_url, user_id, f"/ui/agents/{agent_id}")
    await page.route("**/api/v1/agent-studio/agents?*", answer)
    await page.route("**/executions/stats?*", answer)
    await page.reload()
    await ready(page, "history")
    await page.wait_for_selector("#charts figure")
    bars = page.locator("#charts rect")
    assert await bars.count() == sum(1 for p in series for n in p["counts"].values() if n)
    assert await page.locator("#charts polyline.p95").count() == 1
    # Each day's bars at their day's place: the empty day 5 keeps its slot.
    x = dict(
        await page.eval_on_selector_all(
            "#charts rect",
            "els => els.map(e => [e.textContent.split(':')[0], +e.getAttribute('x')])",
        )
    )
    days = [f"{d.month}/{d.day}" for d in (day - timedelta(days=13 - i) for i in (3, 4, 6))]
    assert x[days[2]] - x[days[1]] == pytest.approx(2 * (x[days[1]] - x[days[0]]), abs=0.2), x

    await page.click("a:has-text('← Agents')")
    await ready(page, "agents")
    card = page.locator(f"#agents a[href='/ui/agents/{agent_id}']")
    assert "100.0 %" in (await card.text_content() or "")
    await page.wait_for_selector("#agents .trend svg polyline")
    trend = page.locator("#agents .trend svg")
    assert await trend.get_attribute("aria-label") == f"runs per day: {per_day}"
    await card.press("Enter")
    await ready(page, "history")
