"""Applies the Alembic migrations in migrations/ to the configured database."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config

from agent_history.read_model.db import DatabaseSettings

MIGRATIONS = Path(__file__).resolve().parent / "migrations"


def alembic_config(settings: DatabaseSettings) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.set_main_option("sqlalchemy.url", settings.database_url.replace("%", "%%"))
    return config


def migrate(settings: DatabaseSettings, revision: str = "head") -> None:
    """Upgrade to ``revision``. Blocking (Alembic runs its own event loop): call from a thread."""
    command.upgrade(alembic_config(settings), revision)
