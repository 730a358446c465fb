"""The services' logs: text by default, JSON lines on request, and no secrets in either."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator

import pytest

from agent_history.api.settings import ApiSettings
from agent_history.contract.settings import environment_of
from agent_history.projector.settings import ProjectorSettings
from agent_history.server.logs import configure_logging, redact

SECRETS = [
    "postgresql+asyncpg://agent_history:s3cr3t-pw@db:5432/agent_history",
    "Authorization: Bearer abc.def-ghi",
    "token eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.c2lnbmF0dXJl",
    "AGENT_HISTORY_JWT_SECRET=s3cr3t-pw",
    "password: 's3cr3t-pw'",
]


@pytest.fixture
def root() -> Iterator[logging.Logger]:
    """The root logger as it was, back after the test (pytest's capture handler included)."""
    logger = logging.getLogger()
    handlers, level = logger.handlers[:], logger.level
    yield logger
    logger.handlers[:] = handlers
    logger.setLevel(level)


def test_text_is_the_default_and_reads_as_a_line(
    root: logging.Logger, capsys: pytest.CaptureFixture[str]
) -> None:
    configure_logging(ProjectorSettings().log_format)
    logging.getLogger("agent_history.test").info("batch %s applied", "0:1-9", extra={"rows": 3})
    (line,) = capsys.readouterr().err.splitlines()
    assert line.endswith(" INFO agent_history.test: batch 0:1-9 applied [rows=3]"), line


def test_json_is_one_object_per_line_with_the_run_it_concerns(
    root: logging.Logger, capsys: pytest.CaptureFixture[str]
) -> None:
    configure_logging("json", "DEBUG")
    log = logging.getLogger("agent_history.test")
    log.warning("execution timed out", extra={"execution_id": "e1", "batch": "0:1-2"})
    try:
        raise ValueError("boom")
    except ValueError:
        log.exception("failed\non two lines")
    first, second = (json.loads(line) for line in capsys.readouterr().err.splitlines())
    assert first.keys() >= {"time", "level", "logger", "message"}
    assert (first["level"], first["logger"], first["message"]) == (
        "WARNING",
        "agent_history.test",
        "execution timed out",
    )
    assert (first["execution_id"], first["batch"]) == ("e1", "0:1-2")
    assert "trace_id" not in first, "no span is current: no ids"
    assert first["time"].endswith("+00:00")
    assert second["message"] == "failed\non two lines"
    assert "ValueError: boom" in second["exception"]


def test_the_setting_reaches_the_api_s_worker_processes(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AGENT_HISTORY_LOG_FORMAT", "json")
    assert environment_of(ApiSettings())["AGENT_HISTORY_LOG_FORMAT"] == "json"
    monkeypatch.setenv("AGENT_HISTORY_LOG_FORMAT", "xml")
    with pytest.raises(ValueError, match="log_format"):
        ApiSettings()


@pytest.mark.parametrize("secret", SECRETS)
@pytest.mark.parametrize("form", ["text", "json"])
def test_no_secret_is_logged_in_either_format(
    secret: str, form: str, root: logging.Logger, capsys: pytest.CaptureFixture[str]
) -> None:
    configure_logging("json" if form == "json" else "text")
    log = logging.getLogger("agent_history.test")
    log.warning("could not start (%s)", secret, extra={"url": secret})
    try:
        raise ConnectionError(secret)
    except ConnectionError:
        log.exception("failed")
    err = capsys.readouterr().err
    assert "s3cr3t-pw" not in err
    assert "eyJzdWIiOiIxIn0" not in err
    assert "abc.def-ghi" not in err


def test_redaction_keeps_what_an_operator_needs() -> None:
    assert redact(SECRETS[0]) == "postgresql+asyncpg://agent_history:***@db:5432/agent_history"
    assert redact("kafka 127.0.0.1:19092, input_tokens=812") == (
        "kafka 127.0.0.1:19092, input_tokens=812"
    )
