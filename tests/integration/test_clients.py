"""Events written by other clients reach the table exactly as the fold says: runs produced by
the official CloudEvents Python SDK in binary and in structured mode, and the README's kcat
commands run as written."""

from __future__ import annotations

import asyncio
import json
import os
import random
import re
import shlex
import subprocess
from pathlib import Path
from typing import Any, Literal

import pytest
from cloudevents.core.bindings.kafka import KafkaMessage, to_binary_event, to_structured_event
from cloudevents.core.v1.event import CloudEvent
from sqlalchemy.ext.asyncio import AsyncEngine

from agent_history.contract.events import Event, event_from_dict, parse_event
from agent_history.devservices import kcat
from agent_history.devservices.settings import ServicesSettings
from agent_history.projector.settings import ProjectorSettings
from tests.faults_support import (
    PROJECT_ROOT,
    Outcome,
    Stream,
    checkpoints,
    compare,
    end_offsets,
    generate_stream,
)
from tests.support import caught_up, eventually

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("running_projector")]

Mode = Literal["binary", "structured"]


def sdk_message(event: Event, mode: Mode) -> KafkaMessage:
    """The record the SDK writes for ``event``, built from its attributes and data alone."""
    execution = str(event.execution_id)
    attributes = {
        "id": str(event.id),
        "type": event.type,
        "source": event.source,
        "subject": execution,
        "time": event.time,
        "datacontenttype": "application/json",
        "partitionkey": execution,  # the SDK's record key
    }
    cloud_event = CloudEvent(attributes, event.data.model_dump(mode="json"))
    return to_binary_event(cloud_event) if mode == "binary" else to_structured_event(cloud_event)


async def outcome_of(settings: ProjectorSettings, engine: AsyncEngine, stream: Stream) -> Outcome:
    outcome = Outcome(events=len(stream.events))
    await compare(engine, settings, stream, outcome)
    return outcome


@pytest.mark.parametrize("mode", ["binary", "structured"])
async def test_runs_written_by_the_official_python_sdk_equal_the_fold(
    mode: Mode, projector_settings: ProjectorSettings, db_engine: AsyncEngine, producer: Any
) -> None:
    s = projector_settings
    stream = generate_stream(random.Random(11), 40)
    futures = []
    for event in stream.events:
        message = sdk_message(event, mode)
        if mode == "binary":
            assert "ce_id" in message.headers, message.headers
        key = message.key.encode() if isinstance(message.key, str) else message.key
        headers = list(message.headers.items())
        futures.append(await producer.send(s.topic, message.value, key=key, headers=headers))
    sent = await asyncio.gather(*futures)

    await caught_up(db_engine, s.consumer_group, s.topic, sent)
    outcome = await outcome_of(s, db_engine, stream)
    assert not outcome.mismatches, "\n".join([outcome.summary(), *outcome.mismatches[:30]])
    assert outcome.dead_lettered == 0, outcome.summary()


# ---- kcat, exactly as the README says ---------------------------------------------------------

README_BROKER = "127.0.0.1:19092"
README_TOPIC = "agent-executions"


def readme_kcat_commands() -> list[str]:
    """The shell blocks of the README's kcat section, as written there."""
    readme = (PROJECT_ROOT / "README.md").read_text(encoding="utf-8")
    section = readme.split("### From the command line: kcat", 1)[1].split("\n### ", 1)[0]
    return re.findall(r"```sh\n(.*?)```", section, flags=re.DOTALL)


def reference_event(command: str) -> Event:
    """The event a README command means, read off its words (not by the projector's code)."""
    words = shlex.split(command.replace("\\\n", " "))
    value = words[words.index("echo") + 1]
    headers = dict(words[i + 1].split("=", 1) for i, word in enumerate(words) if word == "-H")
    content_type = headers.get("content-type", "")
    if content_type.startswith("application/cloudevents"):
        return parse_event(value)
    attributes = {name[3:]: text for name, text in headers.items() if name.startswith("ce_")}
    data = json.loads(value)
    return event_from_dict({**attributes, "datacontenttype": content_type, "data": data})


@pytest.fixture(scope="session")
def kcat_program() -> Path:
    """kcat from the distribution, installed when missing (as root): this test never skips."""
    return kcat.install(ServicesSettings())


async def test_the_readme_kcat_commands_give_the_fold_of_what_they_say(
    kcat_program: Path, projector_settings: ProjectorSettings, db_engine: AsyncEngine
) -> None:
    s = projector_settings
    commands = readme_kcat_commands()
    assert len(commands) == 2, "the README shows one command for each content mode"
    env = {**os.environ, "PATH": f"{kcat_program.parent}{os.pathsep}{os.environ['PATH']}"}
    for command in commands:
        assert README_BROKER in command, command
        assert f"-t {README_TOPIC}" in command, command
        here = command.replace(README_BROKER, s.kafka_bootstrap_servers)
        here = here.replace(f"-t {README_TOPIC}", f"-t {s.topic}")
        shell = ["bash", "-o", "pipefail", "-c", here]
        # In a thread: the projector runs in this event loop.
        ran = await asyncio.to_thread(
            subprocess.run, shell, env=env, capture_output=True, text=True, timeout=60
        )
        assert ran.returncode == 0, f"{here}\n{ran.stdout}{ran.stderr}"

    events = [reference_event(command) for command in commands]
    assert {e.type for e in events} == {"ExecutionStarted", "ExecutionFailed"}
    wanted = await end_offsets(s.kafka_bootstrap_servers, s.topic)
    assert sum(wanted.values()) == len(commands), wanted
    await eventually(
        lambda: checkpoints(db_engine, s),
        lambda seen: all(seen.get(p, 0) >= o for p, o in wanted.items()),
        what=f"checkpoints to cover the README's records: {wanted}",
    )
    stream = Stream(events, [events[0].data.agent_id], [events[0].data.user_id])
    outcome = await outcome_of(s, db_engine, stream)
    assert not outcome.mismatches, "\n".join([outcome.summary(), *outcome.mismatches])
    assert outcome.dead_lettered == 0, outcome.summary()
