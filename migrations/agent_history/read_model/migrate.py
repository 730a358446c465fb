"""Applies the Alembic migrations in migrations/ to the configured database."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType

from alembic import command
from alembic.config import Config
from alembic.script import ScriptDirectory

from agent_history.read_model.db import DatabaseSettings

MIGRATIONS = Path(__file__).resolve().parent / "migrations"


def revision_module(file: str) -> ModuleType:
    """An earlier revision's module (``versions/<file>``), for a migration that reuses its SQL.

    Revision files are not importable by name (they start with digits), so each is loaded from
    its path, under a name of its own.
    """
    path = MIGRATIONS / "versions" / file
    spec = importlib.util.spec_from_file_location(f"agent_history_migration_{path.stem}", path)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def alembic_config(settings: DatabaseSettings) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.set_main_option("sqlalchemy.url", settings.database_url.replace("%", "%%"))
    return config


def head_revision() -> str:
    """The newest revision here: the one ``migrate`` brings a database to."""
    head = ScriptDirectory(str(MIGRATIONS)).get_current_head()
    if head is None:
        raise RuntimeError(f"no migrations in {MIGRATIONS}")
    return head


def migrate(settings: DatabaseSettings, revision: str = "head") -> None:
    """Upgrade to ``revision``. Blocking (Alembic runs its own event loop): call from a thread."""
    command.upgrade(alembic_config(settings), revision)
