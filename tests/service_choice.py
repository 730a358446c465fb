"""Where the integration tests' Kafka and PostgreSQL come from, and why: a pure decision.

Servers named in the environment come first; else containers when a Docker engine answers;
else the local processes of `agent-history services`. A variable given alone is used as it is,
the other server coming from the containers or the local processes.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Literal

KAFKA_VARIABLE = "AGENT_HISTORY_KAFKA_BOOTSTRAP_SERVERS"
DATABASE_VARIABLE = "AGENT_HISTORY_DATABASE_URL"

Source = Literal["environment", "containers", "local"]


@dataclass(frozen=True)
class Choice:
    source: Source
    reason: str
    kafka: str | None = None  # given in the environment: used as it is
    database: str | None = None

    def describe(self) -> str:
        return f"{self.source} ({self.reason})"


def choose_services(env: Mapping[str, str], docker_answers: Callable[[], bool]) -> Choice:
    """The services to test on; ``docker_answers`` is asked only when the environment names
    fewer than both servers."""
    kafka, database = env.get(KAFKA_VARIABLE) or None, env.get(DATABASE_VARIABLE) or None
    if kafka and database:
        both = f"{KAFKA_VARIABLE} and {DATABASE_VARIABLE} are set"
        return Choice("environment", both, kafka, database)
    alone = KAFKA_VARIABLE if kafka else DATABASE_VARIABLE if database else None
    also = f"; {alone} as set" if alone else ""
    if docker_answers():
        return Choice("containers", f"a Docker engine answers{also}", kafka, database)
    return Choice("local", f"no Docker engine answers{also}", kafka, database)
