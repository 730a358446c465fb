"""Where the local services live: state directory, versions and ports."""

from __future__ import annotations

from pathlib import Path

from agent_history.contract.settings import SettingsBase


class ServicesSettings(SettingsBase):
    """Where `agent-history services` keeps the local broker and database."""

    state_dir: Path = Path(".local")
    kafka_version: str = "4.4.0"
    kafka_port: int = 19092
    kafka_controller_port: int = 19093
    postgres_port: int = 15432
