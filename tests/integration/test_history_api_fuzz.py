"""A property-based HTTP fuzz run (schemathesis) against the app's own OpenAPI schema.

Schemathesis generates requests for every operation, valid and invalid, from the schema the
app serves, sends them in-process to the ASGI app (started once, on the session's migrated
database, with rows for the agent, user and execution the schema's examples name), with an
all-executions token. Every check schemathesis has judges each response, as `schemathesis run
--checks all` does: below 500; status code, content type, headers and body as documented;
schema-valid requests accepted and schema-invalid ones refused; no answer without the token.
Requests come from the two phases of `schemathesis run` that need no links between operations:
each parameter at its boundaries (coverage), and hypothesis-generated ones (fuzzing).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import timedelta
from typing import Any
from uuid import UUID, uuid4

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.strategies import SearchStrategy
from schemathesis import APIOperation, Case, GenerationMode
from schemathesis.checks import CHECKS as REGISTERED_CHECKS
from schemathesis.checks import load_all_checks
from schemathesis.python.asgi import shutdown_lifespans
from sqlalchemy import insert
from sqlalchemy.ext.asyncio import AsyncEngine

from agent_history.api.app import create_app
from agent_history.api.auth import mint_token
from agent_history.api.schemas import EXAMPLE_AGENT_ID, EXAMPLE_EXECUTION_ID, EXAMPLE_USER_ID
from agent_history.api.settings import ApiSettings
from agent_history.contract.statuses import STATUSES
from agent_history.read_model.tables import agents, users
from tests.integration.history_api_support import T0, TERMINAL, add_execution

pytestmark = pytest.mark.integration

# Per operation: about 800 requests in all, in under ten seconds.
MAX_EXAMPLES = 150
EXAMPLES = {
    "agent_id": EXAMPLE_AGENT_ID,
    "user_id": EXAMPLE_USER_ID,
    "execution_id": EXAMPLE_EXECUTION_ID,
}
# Every check schemathesis has, as `--checks all` selects them.
load_all_checks()
CHECKS = [check for check in REGISTERED_CHECKS.get_all() if not isinstance(check, type)]
# A schema cannot tell a cursor this API issued from any other string, nor say that offset must
# be 0 beside one: a schema-valid list request may be the 400 that the lists document.
LISTS_ACCEPT = {
    "include-path-regex": "/executions$",
    "checks": {
        "positive_data_acceptance": {
            "expected-statuses": ["2xx", "3xx", "400", "401", "403", "404", "409", "429", "5xx"]
        }
    },
}

# Nor a login code this API issued from any other string: a schema-valid one may be the 400.
LOGIN_ACCEPTS = {**LISTS_ACCEPT, "include-path-regex": "/login$"}


@pytest.fixture(scope="module")
async def example_rows(db_engine: AsyncEngine) -> None:
    """Executions of every status for the agent, user and execution the examples name."""
    agent_id, user_id = UUID(EXAMPLE_AGENT_ID), UUID(EXAMPLE_USER_ID)
    async with db_engine.begin() as conn:
        await conn.execute(insert(agents).values(id=agent_id, name="Report summariser"))
        await conn.execute(insert(users).values(id=user_id, name=None))
    for i, status in enumerate(STATUSES * 3):
        await add_execution(
            db_engine,
            agent_id,
            user_id,
            start=T0 + timedelta(seconds=i),
            status=status,
            duration=timedelta(milliseconds=250 * i) if status in TERMINAL else None,
            execution_id=UUID(EXAMPLE_EXECUTION_ID) if i == 2 else None,
            input_data={"prompt": f"run {i}", "nested": {"list": [1, None, "x"]}},
            output_data=None if i % 2 else ["any", {"json": True}],
            error_message="quota exceeded" if status == "failed" else None,
        )


@pytest.fixture(scope="module")
def bearer(api_settings: ApiSettings) -> dict[str, str]:
    """The Authorization header of a token that reads every user's executions."""
    return {"Authorization": f"Bearer {mint_token(api_settings, uuid4(), all_scope=True)}"}


@pytest.fixture(scope="module")
def api_schema(
    api_settings: ApiSettings, bearer: dict[str, str], example_rows: None
) -> Iterator[schemathesis.BaseSchema]:
    """The schema as the app serves it; requests go to that app, in-process, with a token
    for the bearer scheme that reads every user's executions (invalid requests may drop it)."""
    token = bearer["Authorization"].removeprefix("Bearer ")
    config = schemathesis.Config.from_dict(
        {
            "auth": {"openapi": {"bearer": {"bearer": token}}},
            "operations": [LISTS_ACCEPT, LOGIN_ACCEPTS],
        }
    )
    # Live streams end within a moment, so that a response can be read to its end.
    short = api_settings.model_copy(update={"stream_max_seconds": 0.2})
    yield schemathesis.openapi.from_asgi("/openapi.json", create_app(short), config=config)
    # Schemathesis started the app's lifespan on an event loop of its own: stop it there.
    shutdown_lifespans()


def _operations() -> list[str]:
    """Every operation's label, e.g. "GET /healthz", from the app's schema (no database needed)."""
    paths = create_app(ApiSettings()).openapi()["paths"]
    return [
        f"{method.upper()} {path}" for path, operations in paths.items() for method in operations
    ]


def _text_in_disguise(case: Case[Any]) -> bool:
    """Whether an invalid case only gave a list-of-text parameter (``tag``) values of another
    JSON type: ``true`` or ``5`` reach the server as the text "true" or "5", a valid tag, so
    such a case is not invalid on the wire. (Schemathesis knows this of a text parameter, but
    not of a list of text.)"""
    value = (case.query or {}).get("tag")
    values = value if isinstance(value, list) else [value]
    return value is not None and not all(isinstance(v, str) for v in values)


def _cases(operation: APIOperation[Any, Any, Any, Any]) -> SearchStrategy[Case[Any]]:
    """Valid requests, valid requests for the example rows, and invalid requests."""
    names = re.findall(r"{(\w+)}", operation.path)
    strategies = [operation.as_strategy(GenerationMode.POSITIVE)]
    if names:
        known = {name: EXAMPLES[name] for name in names}
        strategies.append(operation.as_strategy(GenerationMode.POSITIVE, path_parameters=known))
    if names or operation.query:
        invalid = operation.as_strategy(GenerationMode.NEGATIVE)
        strategies.append(invalid.filter(lambda case: not _text_in_disguise(case)))
    return st.one_of(strategies)


@pytest.mark.parametrize("label", _operations())
def test_every_operation_answers_within_its_schema(
    api_schema: schemathesis.BaseSchema, label: str
) -> None:
    operation = api_schema.find_operation_by_label(label)
    assert operation is not None, label

    @given(case=_cases(operation))
    @settings(
        max_examples=MAX_EXAMPLES,
        deadline=None,
        derandomize=True,
        database=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
    )
    def exchange(case: Case[Any]) -> None:
        case.call_and_validate(checks=CHECKS)

    exchange()


@pytest.mark.parametrize("label", _operations())
def test_every_operation_answers_its_boundary_cases(
    api_schema: schemathesis.BaseSchema, bearer: dict[str, str], label: str
) -> None:
    """The cases `schemathesis run` tries before fuzzing: each parameter at its bounds, missing,
    or of the wrong type or format, one at a time."""
    operation = api_schema.find_operation_by_label(label)
    assert operation is not None, label
    generation = api_schema.config.generation_for(operation=operation, phase="coverage")
    for case in api_schema.iter_coverage_cases(
        operation, generation_modes=list(GenerationMode), generation_config=generation
    ):
        case.call_and_validate(headers=bearer, checks=CHECKS)
