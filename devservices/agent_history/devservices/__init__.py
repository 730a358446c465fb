"""Local Kafka broker and PostgreSQL server for development and tests, as plain processes.

`up` installs what is missing (the broker's jars via Maven into state_dir, PostgreSQL via
apt-get when root), starts both in the background and waits until they accept clients; `down`
stops them; `status` says what runs where. `kafka` and `postgres` start and stop one service
alone, for tests that inject faults; `kcat.install` finds or installs the kcat client that the
README's examples and their test use.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from agent_history.devservices import kafka, kcat, postgres, processes
from agent_history.devservices.processes import ServicesError
from agent_history.devservices.settings import ServicesSettings

__all__ = [
    "ServicesError",
    "ServicesStatus",
    "down",
    "kafka",
    "kcat",
    "postgres",
    "status",
    "up",
]


@dataclass(frozen=True)
class ServicesStatus:
    """What runs, where, and where it logs. `*_running` means alive and accepting clients."""

    kafka_bootstrap_servers: str
    database_url: str
    kafka_running: bool
    postgres_running: bool
    kafka_pid: int | None
    postgres_pid: int | None
    kafka_log: Path
    postgres_log: Path

    @property
    def all_running(self) -> bool:
        return self.kafka_running and self.postgres_running

    def env_lines(self) -> list[str]:
        """The environment that points the producer, projector and API at these services."""
        return [
            f"AGENT_HISTORY_KAFKA_BOOTSTRAP_SERVERS={self.kafka_bootstrap_servers}",
            f"AGENT_HISTORY_DATABASE_URL={self.database_url}",
        ]

    def describe(self) -> str:
        """A human-readable report: one line per service, then the environment lines."""
        kafka_line = _describe_one("kafka", self.kafka_running, self.kafka_pid, self.kafka_log)
        pg_line = _describe_one(
            "postgres", self.postgres_running, self.postgres_pid, self.postgres_log
        )
        return "\n".join([kafka_line, pg_line, "", *self.env_lines()])


def _describe_one(name: str, running: bool, pid: int | None, log: Path) -> str:
    if running:
        state = f"running (pid {pid})"
    elif pid is not None:
        state = f"started but not accepting clients (pid {pid})"
    else:
        state = "stopped"
    return f"{name:<9}{state:<32}log: {log}"


def status(settings: ServicesSettings) -> ServicesStatus:
    kafka_pid = kafka.running_pid(settings)
    postgres_pid = postgres.running_pid(settings)
    return ServicesStatus(
        kafka_bootstrap_servers=kafka.bootstrap_servers(settings),
        database_url=postgres.database_url(settings),
        kafka_running=kafka_pid is not None and kafka.answers_metadata(settings),
        postgres_running=postgres_pid is not None
        and processes.port_accepts(settings.postgres_port),
        kafka_pid=kafka_pid,
        postgres_pid=postgres_pid,
        kafka_log=kafka.log_file(settings),
        postgres_log=postgres.log_file(settings),
    )


def up(settings: ServicesSettings) -> ServicesStatus:
    """Install what is missing, start both services (idempotent) and wait until both serve."""
    # Install both before starting either, so a missing tool fails before anything runs.
    postgres.install(settings)
    kafka.install(settings)
    # The broker's JVM warms up while PostgreSQL starts.
    kafka_pid = kafka.launch(settings)
    postgres.start(settings)
    kafka.wait_until_ready(settings, kafka_pid)
    return status(settings)


def down(settings: ServicesSettings) -> None:
    """Stop both services; leaves nothing running. Idempotent."""
    kafka.stop(settings)
    postgres.stop(settings)
