"""An agent's history in a real browser: signing in, filters in the URL, scrolling by cursor,
live updates, export, and what another user's token may see."""

from __future__ import annotations

import asyncio
import csv
import io
import uuid
from urllib.parse import parse_qs, urlparse

import pytest
from playwright.async_api import BrowserContext, Page

from agent_history.api.auth import mint_token
from agent_history.api.login import login_url, mint_login_code
from agent_history.api.settings import ApiSettings
from agent_history.producer import Publisher
from tests.integration.page.conftest import ready, settle
from tests.integration.page.runs import Spec, end, projected, publish, signed_in

pytestmark = pytest.mark.integration


async def statuses(page: Page) -> list[str]:
    found: list[str] = await page.locator("#runs tbody tr").evaluate_all(
        "rs => rs.map(r => r.dataset.status)"
    )
    return found


async def test_sign_in_by_pasting_a_token_and_by_a_one_time_link(
    browser: BrowserContext, api_settings: ApiSettings, page_url: str, publisher: Publisher
) -> None:
    agent_id, user_id = uuid.uuid4(), uuid.uuid4()
    await publish(publisher, agent_id, Spec(user_id))
    await projected(api_settings, page_url, agent_id, 1)
    page = await browser.new_page()
    await page.goto(f"{page_url}/ui/agents/{agent_id}")
    await page.fill("#token", mint_token(api_settings, user_id))
    await page.click("form.signin button[type=submit]")
    await ready(page, "history")
    assert await statuses(page) == ["completed"]
    await page.click("#signout")
    await page.wait_for_selector("#token")

    link = login_url(page_url, mint_login_code(api_settings, user_id), f"/ui/agents/{agent_id}")
    await page.goto(link)
    await ready(page, "history")
    assert "code=" not in page.url, f"the code stays in the address bar: {page.url}"
    await page.click("#signout")
    await page.goto(link)  # the same link a second time
    await page.wait_for_selector("form.signin .error:has-text('used already')")


async def test_filters_live_in_the_url_and_the_back_button_walks_them(
    browser: BrowserContext, api_settings: ApiSettings, page_url: str, publisher: Publisher
) -> None:
    agent_id, user_id = uuid.uuid4(), uuid.uuid4()
    specs = [
        Spec(user_id, "completed", model="gpt-4o", tags=["prod"]),
        Spec(user_id, "failed", model="gpt-4o", tags=["prod", "eu"]),
        Spec(user_id, "failed", model="llama", tags=["eu"]),
        Spec(user_id, "cancelled", model="llama"),
    ]
    for spec in specs:
        await publish(publisher, agent_id, spec)
    await projected(api_settings, page_url, agent_id, len(specs))
    page = await signed_in(browser, api_settings, page_url, user_id, f"/ui/agents/{agent_id}")
    assert len(await statuses(page)) == 4

    await page.select_option("select[name=status]", "failed")
    await page.click("form.filters button[type=submit]")
    await ready(page, "history")
    assert await statuses(page) == ["failed", "failed"]
    assert parse_qs(urlparse(page.url).query) == {"status": ["failed"]}

    await page.fill("input[name=tag]", "prod")
    await page.fill("input[name=model]", "gpt-4o")
    await page.click("form.filters button[type=submit]")
    await ready(page, "history")
    assert await statuses(page) == ["failed"]
    assert parse_qs(urlparse(page.url).query) == {
        "status": ["failed"],
        "tag": ["prod"],
        "model": ["gpt-4o"],
    }

    await page.go_back()
    await ready(page, "history")
    assert await statuses(page) == ["failed", "failed"]
    assert await page.input_value("select[name=status]") == "failed"
    assert await page.input_value("input[name=tag]") == ""
    await page.reload()  # a shared link opens the same list
    await ready(page, "history")
    assert await statuses(page) == ["failed", "failed"]


async def test_the_table_scrolls_on_by_cursor_without_repeats(
    browser: BrowserContext, api_settings: ApiSettings, page_url: str, publisher: Publisher
) -> None:
    agent_id, user_id = uuid.uuid4(), uuid.uuid4()
    count = 120
    for _ in range(count):
        await publish(publisher, agent_id, Spec(user_id))
    await projected(api_settings, page_url, agent_id, count)
    page = await signed_in(browser, api_settings, page_url, user_id, f"/ui/agents/{agent_id}")
    cursors: list[str] = []
    page.on("request", lambda r: cursors.extend(parse_qs(urlparse(r.url).query).get("cursor", [])))
    rows = page.locator("#runs tbody tr")
    assert await rows.count() == 50

    async def scrolled() -> bool:
        await page.keyboard.press("End")
        return await rows.count() == count

    await settle(scrolled, f"all {count} rows after scrolling")
    ids = await rows.evaluate_all("rs => rs.map(r => r.dataset.id)")
    assert len(set(ids)) == count
    starts = await rows.evaluate_all("rs => rs.map(r => r.dataset.start)")
    assert starts == sorted(starts, reverse=True)
    assert len(cursors) == 2, cursors
    await page.wait_for_selector(".sentinel:has-text('End of the history')")


async def test_another_users_runs_stay_out_of_sight(
    browser: BrowserContext, api_settings: ApiSettings, page_url: str, publisher: Publisher
) -> None:
    agent_id, mine, theirs = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    own = await publish(publisher, agent_id, Spec(mine))
    other = await publish(publisher, agent_id, Spec(theirs, "failed"))
    await projected(api_settings, page_url, agent_id, 2)
    page = await signed_in(browser, api_settings, page_url, mine, f"/ui/agents/{agent_id}")
    assert await page.locator("#runs tbody tr").evaluate_all("rs => rs.map(r => r.dataset.id)") == [
        str(own)
    ]
    await page.goto(f"{page_url}/ui/executions/{other}")
    await ready(page, "error")
    assert await page.text_content("h1") == "Not found"
    await page.goto(f"{page_url}/ui/agents/{agent_id}?user={theirs}")
    await ready(page, "history")
    assert await page.locator("#runs tbody tr").count() == 0


async def test_a_new_run_appears_and_a_running_one_ends_without_a_reload(
    browser: BrowserContext, api_settings: ApiSettings, page_url: str, publisher: Publisher
) -> None:
    agent_id, user_id = uuid.uuid4(), uuid.uuid4()
    running = Spec(user_id, None)
    await publish(publisher, agent_id, running)
    await projected(api_settings, page_url, agent_id, 1)
    page = await signed_in(browser, api_settings, page_url, user_id, f"/ui/agents/{agent_id}")
    await page.wait_for_selector("#live.on")
    fresh = await publish(publisher, agent_id, Spec(user_id, "failed"))
    await page.wait_for_selector(f"#runs tr[data-id='{fresh}'][data-status=failed]")
    await end(publisher, agent_id, Spec(user_id, execution_id=running.execution_id))
    ended = f"#runs tr[data-id='{running.execution_id}'][data-status=completed]"
    await page.wait_for_selector(ended)
    assert await page.locator("#runs tbody tr").count() == 2


async def test_export_downloads_a_csv_of_the_filtered_list(
    browser: BrowserContext, api_settings: ApiSettings, page_url: str, publisher: Publisher
) -> None:
    agent_id, user_id = uuid.uuid4(), uuid.uuid4()
    made = [await publish(publisher, agent_id, Spec(user_id, s)) for s in ("completed", "failed")]
    await projected(api_settings, page_url, agent_id, 2)
    path = f"/ui/agents/{agent_id}?status=failed"
    page = await signed_in(browser, api_settings, page_url, user_id, path)
    async with page.expect_download() as info:
        await page.click("button:has-text('Download CSV')")
    download = await info.value
    text = await asyncio.to_thread((await download.path()).read_text)
    rows = list(csv.DictReader(io.StringIO(text)))
    assert [row["id"] for row in rows] == [str(made[1])]
    assert rows[0]["status"] == "failed"
