"""A single-node Apache Kafka broker (combined KRaft controller) run from Maven Central jars."""

from __future__ import annotations

import base64
import shutil
import socket
import struct
import uuid
from importlib import resources
from pathlib import Path

from agent_history.devservices import processes
from agent_history.devservices.processes import ServicesError
from agent_history.devservices.settings import ServicesSettings

START_TIMEOUT_S = 120.0
STOP_TIMEOUT_S = 30.0
_MAIN_CLASS = "kafka.Kafka"
_RESOURCES = "agent_history.devservices"


def home(settings: ServicesSettings) -> Path:
    return settings.state_dir.absolute() / "kafka"


def log_file(settings: ServicesSettings) -> Path:
    return home(settings) / "kafka.log"


def bootstrap_servers(settings: ServicesSettings) -> str:
    return f"127.0.0.1:{settings.kafka_port}"


def install(settings: ServicesSettings) -> Path:
    """Resolve the broker's jars into the state dir once (Maven runs only when they are missing)."""
    libs = home(settings) / "libs" / settings.kafka_version
    with processes.exclusive(settings.state_dir, "kafka-install"):
        if not libs.is_dir():
            _resolve_jars(settings, libs)
    return libs


def _resolve_jars(settings: ServicesSettings, libs: Path) -> None:
    mvn = shutil.which("mvn")
    if mvn is None or shutil.which("java") is None:
        raise ServicesError("the Kafka broker needs Java 17+ and Maven on PATH (`java`, `mvn`)")
    build = home(settings) / "maven"
    build.mkdir(parents=True, exist_ok=True)
    pom = build / "pom.xml"
    pom.write_text(resources.files(_RESOURCES).joinpath("pom.xml").read_text())
    # Resolve into a scratch dir and rename at the end: an interrupted run leaves no half tree.
    partial = libs.with_name(f"{settings.kafka_version}.partial")
    shutil.rmtree(partial, ignore_errors=True)
    maven = [mvn, "-B", "-q", "-f", str(pom), f"-Dkafka.version={settings.kafka_version}"]
    into = f"-DoutputDirectory={partial}"
    what = f"resolving org.apache.kafka:kafka_2.13:{settings.kafka_version} with Maven"
    copy_tree = ["dependency:copy-dependencies", "-DincludeScope=runtime", into]
    processes.run_checked([*maven, *copy_tree], what=what)
    bridge = _slf4j_bridge(partial)
    processes.run_checked([*maven, "dependency:copy", f"-Dartifact={bridge}", into], what=what)
    partial.rename(libs)


def _slf4j_bridge(jars: Path) -> str:
    """The log4j2 binding for the tree's SLF4J: without one the broker logs nothing at all."""
    versions = dict(jar.stem.rsplit("-", 1) for jar in jars.glob("*-*.jar"))
    if "log4j-core" not in versions or "slf4j-api" not in versions:
        raise ServicesError(f"log4j-core or slf4j-api is missing from the Kafka jars in {jars}")
    # SLF4J 1.x binds through StaticLoggerBinder (log4j-slf4j-impl), 2.x through ServiceLoader
    # (log4j-slf4j2-impl); the other one is silently ignored.
    artifact = "log4j-slf4j-impl" if versions["slf4j-api"].startswith("1.") else "log4j-slf4j2-impl"
    return f"org.apache.logging.log4j:{artifact}:{versions['log4j-core']}"


def _server_properties(settings: ServicesSettings) -> dict[str, str]:
    broker, controller = settings.kafka_port, settings.kafka_controller_port
    return {
        "process.roles": "broker,controller",
        "node.id": "1",
        # A static voter set (formatted without --standalone) lets the ports change later.
        "controller.quorum.voters": f"1@127.0.0.1:{controller}",
        "listeners": f"PLAINTEXT://127.0.0.1:{broker},CONTROLLER://127.0.0.1:{controller}",
        "advertised.listeners": f"PLAINTEXT://127.0.0.1:{broker}",
        "controller.listener.names": "CONTROLLER",
        "inter.broker.listener.name": "PLAINTEXT",
        "listener.security.protocol.map": "PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT",
        "log.dirs": str(home(settings) / "data"),
        # One node: every internal topic has one replica; one offsets partition starts fast.
        "offsets.topic.replication.factor": "1",
        "offsets.topic.num.partitions": "1",
        "transaction.state.log.replication.factor": "1",
        "transaction.state.log.min.isr": "1",
        "share.coordinator.state.topic.replication.factor": "1",
        "share.coordinator.state.topic.min.isr": "1",
        "group.initial.rebalance.delay.ms": "0",
        # The 128 MiB default would take a quarter of the 512 MiB heap.
        "log.cleaner.dedupe.buffer.size": str(16 * 1024 * 1024),
    }


def _write_config(settings: ServicesSettings) -> tuple[Path, Path]:
    """Write server.properties and the log4j2 config (every start: the ports may have changed)."""
    properties = home(settings) / "server.properties"
    lines = [f"{key}={value}" for key, value in _server_properties(settings).items()]
    properties.write_text("\n".join(lines) + "\n")
    log4j = home(settings) / "log4j2.xml"
    log4j.write_text(resources.files(_RESOURCES).joinpath("log4j2.xml").read_text())
    return properties, log4j


def _java(libs: Path, main: str, *args: str, log4j: Path | None = None) -> list[str]:
    java = shutil.which("java") or "java"
    flags = ["-Xmx512m", "-XX:+UseG1GC", "-XX:+ExitOnOutOfMemoryError", "-Djava.awt.headless=true"]
    if log4j is not None:
        flags.append(f"-Dlog4j2.configurationFile={log4j}")
    return [java, *flags, "-cp", f"{libs}/*", main, *args]


def _format_storage(settings: ServicesSettings, libs: Path, properties: Path) -> None:
    if (home(settings) / "data" / "meta.properties").exists():
        return
    # Kafka's Uuid.randomUuid(): url-safe base64 without padding, never starting with "-".
    cluster_id = "-"
    while cluster_id.startswith("-"):
        cluster_id = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
    # No log4j2 config: its default (errors only) keeps a failure's cause out of a config dump.
    command = _java(
        libs, "kafka.tools.StorageTool", "format", "-t", cluster_id, "-c", str(properties)
    )
    processes.run_checked(command, what="formatting the KRaft storage")


def running_pid(settings: ServicesSettings) -> int | None:
    """The pid of this state dir's broker, found by its command line even without a pid file."""
    properties = str(home(settings) / "server.properties")
    return processes.find_process(
        lambda argv: _MAIN_CLASS in argv and properties in argv,
        hint=processes.read_pid(home(settings) / "kafka.pid"),
    )


def launch(settings: ServicesSettings) -> int:
    """Start the broker in the background unless it already runs; return its pid at once."""
    with processes.exclusive(settings.state_dir):
        pid = running_pid(settings)
        if pid is not None:
            return pid
        for port in (settings.kafka_port, settings.kafka_controller_port):
            if processes.port_accepts(port):
                raise ServicesError(
                    f"port {port} is taken by a process other than our Kafka broker"
                )
        libs = install(settings)
        properties, log4j = _write_config(settings)
        _format_storage(settings, libs, properties)
        command = _java(libs, _MAIN_CLASS, str(properties), log4j=log4j)
        processes.rotate_log(log_file(settings))
        pid = processes.spawn_detached(command, log_file=log_file(settings), cwd=home(settings))
        (home(settings) / "kafka.pid").write_text(f"{pid}\n")
        return pid


def wait_until_ready(settings: ServicesSettings, pid: int) -> None:
    """Block until the broker answers a metadata request; fail if it exits or times out."""

    def ready() -> bool:
        if not processes.command_line(pid):
            raise ServicesError(
                f"Kafka exited during startup; see {log_file(settings)}:\n"
                + processes.log_excerpt(log_file(settings))
            )
        return answers_metadata(settings)

    if not processes.wait_until(ready, timeout=START_TIMEOUT_S, interval=0.25):
        raise ServicesError(
            f"Kafka did not answer on {bootstrap_servers(settings)} within {START_TIMEOUT_S:.0f}s; "
            f"see {log_file(settings)}"
        )


def start(settings: ServicesSettings) -> int:
    """Start the broker (idempotent) and wait until it serves metadata; return its pid."""
    pid = launch(settings)
    wait_until_ready(settings, pid)
    return pid


def stop(settings: ServicesSettings) -> None:
    """Stop the broker gracefully (SIGTERM, then SIGKILL after a timeout); idempotent."""
    with processes.exclusive(settings.state_dir):
        pid = running_pid(settings)
        if pid is not None:
            processes.stop_process(pid, timeout=STOP_TIMEOUT_S)
        (home(settings) / "kafka.pid").unlink(missing_ok=True)


def answers_metadata(settings: ServicesSettings) -> bool:
    """Whether a broker on the port answers a Metadata request listing at least one broker."""
    # Header: api_key 3 (Metadata), version 4 (not yet "flexible", so plain fixed-width fields),
    # correlation id, client id. Body: an empty topic list, no auto-creation.
    client_id = b"agent-history-services"
    request = struct.pack(">hhih", 3, 4, 1, len(client_id)) + client_id + struct.pack(">i?", 0, 0)
    try:
        with socket.create_connection(("127.0.0.1", settings.kafka_port), timeout=2.0) as conn:
            conn.sendall(struct.pack(">i", len(request)) + request)
            with conn.makefile("rb") as reply:
                # Size, correlation id, throttle time, then the broker array's length.
                _, correlation_id, _, brokers = struct.unpack(">iiii", reply.read(16))
    except (OSError, struct.error):
        return False
    return bool(correlation_id == 1 and brokers > 0)
