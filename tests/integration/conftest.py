"""Fixtures of the integration tests that act on a whole read model (replay, the watchdog): a
database of their own, the projector's settings and an engine on it, and the projector running.

The session's database is shared by every test; these tests replace, or judge, every row.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from agent_history.projector.settings import ProjectorSettings
from agent_history.read_model.db import make_engine
from tests.conftest import fresh_database, projecting


@pytest.fixture
def own_database(service_urls: tuple[str, str]) -> Iterator[str]:
    with fresh_database(service_urls[1]) as url:
        yield url


@pytest.fixture
def settings(projector_settings: ProjectorSettings, own_database: str) -> ProjectorSettings:
    return projector_settings.model_copy(update={"database_url": own_database})


@pytest.fixture(params=[1, 2], ids=["in-process", "two-loader-processes"])
def replay_settings(
    request: pytest.FixtureRequest, settings: ProjectorSettings
) -> ProjectorSettings:
    """The settings for a replay that loads in its own process, then for one with two loader
    processes (shares.py)."""
    return settings.model_copy(update={"replay_workers": request.param})


@pytest.fixture
async def engine(settings: ProjectorSettings) -> AsyncIterator[AsyncEngine]:
    e = make_engine(settings)
    yield e
    await e.dispose()


@pytest.fixture
async def projector(settings: ProjectorSettings) -> AsyncIterator[None]:
    async with projecting(settings):
        yield
