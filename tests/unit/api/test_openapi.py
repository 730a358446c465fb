"""The OpenAPI document: response models, problem media types, parameters and security."""

from __future__ import annotations

from typing import Any

import pytest

from agent_history.api.app import create_app
from agent_history.api.settings import ApiSettings
from agent_history.contract.statuses import STATUSES

PREFIX = "/api/v1/agent-studio"
LIST_PARAMS = {
    "limit",
    "offset",
    "cursor",
    "status",
    "status_filter",
    "started_after",
    "started_before",
    "order",
    "include",
    "tag",
    "model",
    "parent_execution_id",
    "root",
}


@pytest.fixture(scope="module")
def spec() -> dict[str, Any]:
    return create_app(ApiSettings()).openapi()


def _operation(spec: dict[str, Any], path: str) -> dict[str, Any]:
    operation: dict[str, Any] = spec["paths"][path]["get"]
    return operation


def test_lists_document_their_parameters(spec: dict[str, Any]) -> None:
    agents = _operation(spec, f"{PREFIX}/agents/{{agent_id}}/executions")
    users = _operation(spec, f"{PREFIX}/users/{{user_id}}/executions")
    assert {p["name"] for p in agents["parameters"]} == LIST_PARAMS | {"agent_id", "user_id"}
    assert {p["name"] for p in users["parameters"]} == LIST_PARAMS | {"user_id", "agent_id"}
    ok = agents["responses"]["200"]["content"]["application/json"]["schema"]
    assert ok == {"$ref": "#/components/schemas/ExecutionPage"}
    assert "metadata.KEY=VALUE" in agents["description"]
    assert "metadata.KEY=VALUE" in users["description"]
    include = next(p for p in agents["parameters"] if p["name"] == "include")
    assert "keep pages small" in include["description"]
    assert include["schema"]["pattern"].startswith("^((input_data|output_data)")


def test_errors_are_documented_as_problems(spec: dict[str, Any]) -> None:
    problem = {"$ref": "#/components/schemas/Problem"}
    for path, operations in spec["paths"].items():
        for status, response in operations["get"]["responses"].items():
            if status.startswith(("4", "5")):
                assert response["content"] == {"application/problem+json": {"schema": problem}}, (
                    path,
                    status,
                )
    listing = _operation(spec, f"{PREFIX}/agents/{{agent_id}}/executions")
    assert {"400", "401", "422", "503"} <= listing["responses"].keys()
    detail = _operation(spec, f"{PREFIX}/executions/{{execution_id}}")
    assert {"401", "404"} <= detail["responses"].keys()


def test_history_needs_a_bearer_token_and_probes_do_not(spec: dict[str, Any]) -> None:
    assert spec["components"]["securitySchemes"]["bearer"] == {
        "type": "http",
        "scheme": "bearer",
        "bearerFormat": "JWT",
        "description": spec["components"]["securitySchemes"]["bearer"]["description"],
    }
    for path, operations in spec["paths"].items():
        secured = operations["get"].get("security") == [{"bearer": []}]
        assert secured == path.startswith(PREFIX), path


def test_list_items_leave_out_payloads_and_the_detail_has_them(spec: dict[str, Any]) -> None:
    schemas = spec["components"]["schemas"]
    summary, execution = schemas["ExecutionSummary"], schemas["Execution"]
    assert not {"input_data", "output_data"} & set(summary["required"])
    assert {"input_data", "output_data"} <= set(execution["required"])
    assert execution["examples"], "the Execution schema should carry an example"
    hidden = {"input_rank", "input_time", "input_event_id", "terminal_event_id"}
    assert not hidden & execution["properties"].keys()
    stats = schemas["StatusCounts"]
    assert set(stats["required"]) == set(STATUSES)
    assert "last_seen_at" in execution["required"]
    assert "last_seen_at" in summary["required"]


def test_executions_document_what_runs_carry(spec: dict[str, Any]) -> None:
    schemas = spec["components"]["schemas"]
    carried = {"model", "tags", "metadata", "parent_execution_id", "usage"}
    for name in ("Execution", "ExecutionSummary", "TreeNode"):
        assert carried <= set(schemas[name]["required"]), name
    (example,) = schemas["Execution"]["examples"]
    assert carried <= example.keys()
    # Money is a decimal string, never a JSON number.
    assert schemas["Cost"]["properties"]["amount"]["type"] == "string"
    assert isinstance(example["usage"]["cost"]["amount"], str)


def test_the_tree_documents_its_bounds_and_its_shape(spec: dict[str, Any]) -> None:
    tree = _operation(spec, f"{PREFIX}/executions/{{execution_id}}/tree")
    bounds = {p["name"]: p["schema"] for p in tree["parameters"] if p["in"] == "query"}
    assert bounds["depth"] == {"type": "integer", "maximum": 20, "minimum": 0, "default": 5} | {
        k: v for k, v in bounds["depth"].items() if k in {"description", "title"}
    }
    assert (bounds["limit"]["minimum"], bounds["limit"]["maximum"]) == (1, 5000)
    ok = tree["responses"]["200"]["content"]["application/json"]["schema"]
    assert ok == {"$ref": "#/components/schemas/ExecutionTree"}
    assert {"401", "404", "422"} <= tree["responses"].keys()
    assert spec["components"]["schemas"]["ExecutionTree"]["examples"]
