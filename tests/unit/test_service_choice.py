"""Where the integration tests' services come from: environment, containers or local processes."""

from __future__ import annotations

from pathlib import Path

from tests.containers import KAFKA_ENV, KAFKA_IMAGE, POSTGRES_IMAGE
from tests.service_choice import DATABASE_VARIABLE, KAFKA_VARIABLE, Choice, choose_services

KAFKA = "kafka.example:9092"
DATABASE = "postgresql+asyncpg://u:p@db.example:5432/agent_history"


class Docker:
    """A stand-in for the engine probe that says whether it was asked."""

    def __init__(self, answers: bool) -> None:
        self.answers, self.asked = answers, 0

    def __call__(self) -> bool:
        self.asked += 1
        return self.answers


def test_servers_named_in_the_environment_come_first() -> None:
    docker = Docker(answers=True)

    choice = choose_services({KAFKA_VARIABLE: KAFKA, DATABASE_VARIABLE: DATABASE}, docker)

    both = f"{KAFKA_VARIABLE} and {DATABASE_VARIABLE} are set"
    assert choice == Choice("environment", both, KAFKA, DATABASE)
    assert docker.asked == 0, "the engine need not be asked when both servers are named"


def test_containers_when_a_docker_engine_answers() -> None:
    choice = choose_services({"PATH": "/usr/bin"}, Docker(answers=True))

    assert choice == Choice("containers", "a Docker engine answers")


def test_local_processes_when_no_docker_engine_answers() -> None:
    choice = choose_services({}, Docker(answers=False))

    assert choice == Choice("local", "no Docker engine answers")


def test_a_server_named_alone_is_kept_and_the_other_one_chosen() -> None:
    database_alone = {DATABASE_VARIABLE: DATABASE}
    kafka_alone = {KAFKA_VARIABLE: KAFKA, DATABASE_VARIABLE: ""}

    assert choose_services(database_alone, Docker(answers=True)) == Choice(
        "containers", f"a Docker engine answers; {DATABASE_VARIABLE} as set", database=DATABASE
    )
    assert choose_services(kafka_alone, Docker(answers=False)) == Choice(
        "local", f"no Docker engine answers; {KAFKA_VARIABLE} as set", kafka=KAFKA
    )


def test_the_containers_run_compose_yaml_s_images_and_broker_settings() -> None:
    compose = (Path(__file__).resolve().parents[2] / "compose.yaml").read_text()
    lines = {line.strip() for line in compose.splitlines()}

    assert {f"image: {KAFKA_IMAGE}", f"image: {POSTGRES_IMAGE}"} <= lines
    assert {f"{key}: {value}" for key, value in KAFKA_ENV.items()} <= lines
