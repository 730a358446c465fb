"""Kafka and PostgreSQL in Docker containers (testcontainers), from compose.yaml's images.

The broker is configured as compose.yaml configures it, except that its host listener
advertises the port Docker mapped, which is known only once the container runs.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Self

from docker.errors import DockerException  # type: ignore[import-untyped]
from testcontainers.community.postgres import PostgresContainer
from testcontainers.core.container import DockerContainer
from testcontainers.core.docker_client import DockerClient
from testcontainers.core.wait_strategies import LogMessageWaitStrategy

KAFKA_IMAGE = "apache/kafka:4.4.0"
POSTGRES_IMAGE = "postgres:15"
PROBE_TIMEOUT_S = 2
KAFKA_START_TIMEOUT_S = 120

_HOST_LISTENER = 19092
# compose.yaml's broker settings; KAFKA_ADVERTISED_LISTENERS comes from the start script.
KAFKA_ENV = {
    "CLUSTER_ID": "4bOV6kQ0TWSo9NkEU1RnOg",
    "KAFKA_NODE_ID": "1",
    "KAFKA_PROCESS_ROLES": "broker,controller",
    "KAFKA_LISTENERS": f"INTERNAL://:9092,HOST://:{_HOST_LISTENER},CONTROLLER://:9093",
    "KAFKA_LISTENER_SECURITY_PROTOCOL_MAP": (
        "INTERNAL:PLAINTEXT,HOST:PLAINTEXT,CONTROLLER:PLAINTEXT"
    ),
    "KAFKA_INTER_BROKER_LISTENER_NAME": "INTERNAL",
    "KAFKA_CONTROLLER_LISTENER_NAMES": "CONTROLLER",
    "KAFKA_CONTROLLER_QUORUM_VOTERS": "1@localhost:9093",
    "KAFKA_LOG_DIRS": "/var/lib/kafka/data",
    "KAFKA_OFFSETS_TOPIC_REPLICATION_FACTOR": "1",
    "KAFKA_OFFSETS_TOPIC_NUM_PARTITIONS": "1",
    "KAFKA_TRANSACTION_STATE_LOG_REPLICATION_FACTOR": "1",
    "KAFKA_TRANSACTION_STATE_LOG_MIN_ISR": "1",
    "KAFKA_SHARE_COORDINATOR_STATE_TOPIC_REPLICATION_FACTOR": "1",
    "KAFKA_SHARE_COORDINATOR_STATE_TOPIC_MIN_ISR": "1",
    "KAFKA_GROUP_INITIAL_REBALANCE_DELAY_MS": "0",
}
_START_SCRIPT = "/tmp/agent-history-start.sh"
# Copied after the script: the wait loop never runs a script that is still being written.
_START_READY = "/tmp/agent-history-start.ready"


def docker_answers() -> bool:
    """Whether a Docker engine answers a ping, at the address testcontainers would use."""
    try:
        client = DockerClient(timeout=PROBE_TIMEOUT_S).client
    except DockerException:  # no engine at the address: the client cannot even be made
        return False
    try:
        return bool(client.ping())
    except (DockerException, OSError):  # requests' errors are OSErrors
        return False
    finally:
        client.close()


class KafkaBroker(DockerContainer):
    """One KRaft broker (combined controller) of the apache/kafka image."""

    def __init__(self, image: str = KAFKA_IMAGE) -> None:
        super().__init__(image, env=dict(KAFKA_ENV))
        self.with_exposed_ports(_HOST_LISTENER)
        # The image's own command (/etc/kafka/docker/run) once the start script is in place.
        wait = f"while [ ! -f {_START_READY} ]; do sleep 0.1; done; exec sh {_START_SCRIPT}"
        self.with_command(["sh", "-c", wait])

    def start(self) -> Self:
        super().start()
        advertised = f"INTERNAL://localhost:9092,HOST://{self.bootstrap_servers()}"
        script = f"export KAFKA_ADVERTISED_LISTENERS={advertised}\nexec /etc/kafka/docker/run\n"
        self.copy_into_container(script.encode(), _START_SCRIPT)
        self.copy_into_container(b"", _START_READY)
        started = LogMessageWaitStrategy("Kafka Server started")
        started.with_startup_timeout(KAFKA_START_TIMEOUT_S).wait_until_ready(self)
        return self

    def bootstrap_servers(self) -> str:
        return f"{self.get_container_host_ip()}:{self.get_exposed_port(_HOST_LISTENER)}"


@contextmanager
def kafka_container() -> Iterator[str]:
    """A broker in a container for the duration; yields its bootstrap servers."""
    with KafkaBroker() as broker:
        yield broker.bootstrap_servers()


@contextmanager
def postgres_container() -> Iterator[str]:
    """PostgreSQL in a container for the duration; yields an admin URL (asyncpg driver)."""
    # compose.yaml's role, password and database.
    server = PostgresContainer(
        POSTGRES_IMAGE,
        username="agent_history",
        password="agent_history",
        dbname="agent_history",
        driver="asyncpg",
    )
    with server:
        yield server.get_connection_url()
