"""How every service logs: readable text by default, or one JSON object per line
(AGENT_HISTORY_LOG_FORMAT=json), and never a secret.

Each entry point (the commands, each API worker process) calls ``configure_logging`` once.
A JSON line has ``time``, ``level``, ``logger`` and ``message``; ``trace_id`` and ``span_id``
when an OpenTelemetry span is current; ``exception`` with the traceback; and whatever the call
passed as ``extra=`` (``execution_id``, ``batch``, ...). Both formats go through ``redact``.
"""

from __future__ import annotations

import importlib
import json
import logging
import re
import sys
from datetime import UTC, datetime
from typing import Any, Literal

# Loggers of libraries that bring their own handlers: theirs go, ours take over (they
# propagate to the root logger). Not uvicorn's access log, which `agent-history api` turns off
# (a line per request cost 4-5 % of the API's CPU when this let it through again).
LIBRARY_LOGGERS = ("uvicorn", "uvicorn.error", "faststream")
TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"

_SECRETS = [
    # user:password@ in a URL (a database URL, a broker URL)
    (re.compile(r"(\b[a-zA-Z][\w+.-]*://[^\s:/@]*:)[^\s@/]+@"), r"\1***@"),
    (re.compile(r"(?i)\b(bearer\s+)[\w.~+/=-]+"), r"\1***"),
    (re.compile(r"\beyJ[\w-]+\.[\w-]+\.[\w-]*"), "***"),  # a JWT anywhere
    (
        re.compile(
            r"(?i)(?<![a-z])(password|passwd|secret|token|api_key)"  # a name that says secret
            r"(['\"]?\s*[=:]\s*['\"]?)[^\s'\",;&]+"  # then = or :, then the value
        ),
        r"\1\2***",
    ),
]
# What every LogRecord has; anything else on a record came with extra=.
_STANDARD = set(logging.makeLogRecord({}).__dict__) | {"message", "asctime", "taskName"}


def redact(text: str) -> str:
    """``text`` without passwords in URLs, bearer tokens, JWTs and ``secret=...`` values."""
    for pattern, replacement in _SECRETS:
        text = pattern.sub(replacement, text)
    return text


def extras(record: logging.LogRecord) -> dict[str, Any]:
    """What the call passed with ``extra=``."""
    return {k: v for k, v in record.__dict__.items() if k not in _STANDARD and k[0] != "_"}


def current_trace() -> dict[str, str]:
    """The current OpenTelemetry span's ids, when OpenTelemetry is there and a span is."""
    try:
        trace: Any = importlib.import_module("opentelemetry.trace")
    except ImportError:
        return {}
    context = trace.get_current_span().get_span_context()
    if not context.is_valid:
        return {}
    return {"trace_id": f"{context.trace_id:032x}", "span_id": f"{context.span_id:016x}"}


class TextFormatter(logging.Formatter):
    """The readable default: time, level, logger, message, then any extras as key=value."""

    def __init__(self) -> None:
        super().__init__(TEXT_FORMAT)

    def format(self, record: logging.LogRecord) -> str:
        line = super().format(record)
        given = " ".join(f"{k}={v}" for k, v in extras(record).items())
        return redact(f"{line} [{given}]" if given else line)


class JsonFormatter(logging.Formatter):
    """One JSON object per line."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
            **current_trace(),
        }
        for key, value in extras(record).items():
            entry.setdefault(key, value if isinstance(value, int | float | bool) else str(value))
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        if record.stack_info:
            entry["stack"] = self.formatStack(record.stack_info)
        return json.dumps(
            {k: redact(v) if isinstance(v, str) else v for k, v in entry.items()},
            ensure_ascii=False,
        )


def configure_logging(format: Literal["text", "json"] = "text", level: str | int = "INFO") -> None:
    """One handler on the root logger, on stderr, in ``format``; library loggers propagate."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter() if format == "json" else TextFormatter())
    root = logging.getLogger()
    for old in root.handlers[:]:
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level)
    for name in LIBRARY_LOGGERS:
        library = logging.getLogger(name)
        library.handlers.clear()
        library.propagate = True
