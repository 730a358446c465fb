"""The page's end-to-end tests: Debian's Chromium, driven by Playwright, against the real stack
(the API served over HTTP on a port of its own, the projector on the test's topic, runs
published by the real producer)."""

from __future__ import annotations

import asyncio
import socket
import threading
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import uvicorn
from playwright.async_api import BrowserContext, Page, async_playwright

from agent_history.api.app import create_app
from agent_history.api.settings import ApiSettings
from agent_history.devservices import chromium
from agent_history.devservices.settings import ServicesSettings
from agent_history.producer import Publisher
from agent_history.producer.settings import ProducerSettings

OpenPage = Callable[..., Awaitable[Page]]


@pytest.fixture(scope="session")
def chromium_path() -> Path:
    return chromium.install(ServicesSettings())


@pytest.fixture(scope="session")
def page_url(api_settings: ApiSettings) -> Iterator[str]:
    """The base URL of the API (and its page), served by uvicorn in a thread of its own."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    config = uvicorn.Config(
        create_app(api_settings), host="127.0.0.1", port=port, log_level="warning"
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    for _ in range(200):
        if server.started:
            break
        threading.Event().wait(0.05)
    assert server.started, "the API did not start within 10 s"
    yield f"http://127.0.0.1:{port}"
    server.should_exit = True
    thread.join(10)


@pytest.fixture
async def browser(chromium_path: Path, tmp_path: Path) -> AsyncIterator[BrowserContext]:
    """A fresh browser profile (its own user-data-dir) for one test."""
    async with async_playwright() as playwright:
        context = await playwright.chromium.launch_persistent_context(
            tmp_path / "profile",
            executable_path=str(chromium_path),
            args=chromium.HEADLESS_ARGS,
            viewport={"width": 1280, "height": 900},
        )
        yield context
        await context.close()


@pytest.fixture
async def publisher(
    producer_settings: ProducerSettings, running_projector: None
) -> AsyncIterator[Publisher]:
    """The real producer on the test's topic, with the projector running on it."""
    async with Publisher(producer_settings) as p:
        yield p


async def ready(page: Page, which: str, wait_ms: float = 15_000) -> None:
    """Wait until the page has drawn ``which`` (agents, history, detail, error)."""
    await page.wait_for_selector(f"body[data-ready={which}]", state="attached", timeout=wait_ms)


async def settle(predicate: Callable[[], Awaitable[Any]], what: str, seconds: float = 20) -> Any:
    """Poll ``predicate`` until it returns something truthy; fail saying what was awaited."""
    deadline = asyncio.get_running_loop().time() + seconds
    seen: Any = None
    while asyncio.get_running_loop().time() < deadline:
        seen = await predicate()
        if seen:
            return seen
        await asyncio.sleep(0.1)
    raise AssertionError(f"{what}: not within {seconds} s (last seen: {seen!r})")
