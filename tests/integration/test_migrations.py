"""The Alembic migrations and the models in agent_history/tables.py agree."""

from __future__ import annotations

import pytest
from alembic import command

from agent_history.read_model.db import DatabaseSettings
from agent_history.read_model.migrate import alembic_config
from tests.conftest import fresh_database

pytestmark = pytest.mark.integration


def test_models_and_migrations_agree(database_url: str) -> None:
    # Raises when autogenerate would find any difference between the models and the database.
    command.check(alembic_config(DatabaseSettings(database_url=database_url)))


def test_every_migration_downgrades_and_upgrades_again(service_urls: tuple[str, str]) -> None:
    with fresh_database(service_urls[1]) as url:
        config = alembic_config(DatabaseSettings(database_url=url))
        command.downgrade(config, "base")
        command.upgrade(config, "head")
        command.check(config)
