"""The main job: the whole pipeline on real services, on sample agent runs.

services up -> migrate -> topics -> projector and API (as their own processes) -> ~20 runs
through track_execution -> wait until projected -> one agent's history from the API.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import sys
import time
import uuid
from collections import Counter
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
from rich.console import Console
from rich.table import Table

from agent_history import devservices as services
from agent_history.api.auth import mint_token
from agent_history.api.login import login_url, mint_login_code
from agent_history.api.settings import ApiSettings
from agent_history.contract.settings import SettingsBase, environment_of
from agent_history.devservices.processes import free_port, spawn_detached, stop_process
from agent_history.devservices.settings import ServicesSettings
from agent_history.producer import Publisher
from agent_history.producer.settings import ProducerSettings
from agent_history.projector.settings import ProjectorSettings, WatchdogSettings
from agent_history.projector.topics import ensure_topics
from agent_history.read_model.migrate import migrate
from agent_history.server.samples import record_samples

console = Console(width=max(120, Console().width))


def _pid_file(state: Path, name: str) -> Path:
    return state / "demo" / f"{name}.pid"


def _start(state: Path, name: str, settings: SettingsBase) -> int:
    """`agent-history NAME` in the background, reading exactly ``settings``."""
    log = state / "demo" / f"{name}.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    command = [sys.executable, "-m", "agent_history.server", name]
    env = environment_of(settings)
    pid = spawn_detached(command, log_file=log, cwd=Path.cwd(), env=env)
    _pid_file(state, name).write_text(str(pid))
    return pid


def stop_demo_processes(settings: ServicesSettings) -> None:
    """Stop a projector, API and watchdog left running by `demo --keep`."""
    for name in ("api", "projector", "watchdog"):
        pid_file = _pid_file(settings.state_dir, name)
        if pid_file.exists():
            stop_process(int(pid_file.read_text()), timeout=15)
            pid_file.unlink()


async def _wait_projected(client: httpx.AsyncClient, path: str, expected: int) -> dict[str, Any]:
    deadline = time.monotonic() + 60
    while True:
        try:
            page = (await client.get(path, params={"limit": 100})).json()
            statuses = [e["status"] for e in page.get("executions", ())]
            if (
                page.get("total") == expected
                and "pending" not in statuses
                and "timed_out" in statuses
            ):
                return dict(page)
        except httpx.HTTPError:
            pass
        if time.monotonic() > deadline:
            raise TimeoutError(
                f"the API did not show {expected} executions, one timed out, within 60s"
            )
        await asyncio.sleep(0.1)


def _print_history(page: dict[str, Any], agent: str) -> None:
    executions: list[dict[str, Any]] = page["executions"]
    day = executions[0]["execution_start"][:10] if executions else ""
    table = Table(
        title=f"{agent}: {page['total']} executions on {day} (newest first, from the API)"
    )
    widths = {"status": 9, "started": 8, "duration": 8, "user": 5, "model": 15, "tokens": 11}
    for column, width in {**widths, "cost": 10}.items():
        table.add_column(column, no_wrap=True, min_width=width)
    table.add_column("error", no_wrap=True, overflow="ellipsis")
    colours = {
        "completed": "green",
        "failed": "red",
        "cancelled": "yellow",
        "running": "cyan",
        "timed_out": "magenta",
    }
    for e in executions:
        ms = e["execution_time_ms"]
        table.add_row(
            f"[{colours.get(e['status'], 'white')}]{e['status']}[/]",
            e["execution_start"][11:19],
            "—" if ms is None else f"{ms / 1000:.3f} s",
            (e.get("user") or {}).get("name") or "",
            e.get("model") or "",
            _tokens(e.get("usage")),
            _cost(e.get("usage")),
            e["error_message"] or "",
        )
    console.print(table)
    counts = Counter(e["status"] for e in executions)
    console.print(", ".join(f"{n} {status}" for status, n in counts.most_common()))


async def _wait_tree(client: httpx.AsyncClient, path: str, size: int) -> dict[str, Any]:
    deadline = time.monotonic() + 30
    while True:
        with contextlib.suppress(httpx.HTTPError):
            response = await client.get(path)
            if response.status_code == 200 and len(response.json()["executions"]) == size:
                return dict(response.json())
        if time.monotonic() > deadline:
            raise TimeoutError(f"the API did not show the tree of {size} runs within 30s")
        await asyncio.sleep(0.1)


def _print_tree(tree: dict[str, Any]) -> None:
    """The sub-agent tree, a run per line, indented by its depth."""
    console.print("[bold]A run and its sub-runs[/] (from the API's tree):")
    for node in tree["executions"]:
        ms = node["execution_time_ms"]
        console.print(
            f"{'   ' * node['depth']}{'└─ ' if node['depth'] else ''}"
            f"{(node.get('agent') or {}).get('name') or node['agent_id']}: {node['status']}, "
            f"{'—' if ms is None else f'{ms / 1000:.3f} s'}, {node.get('model') or ''}, "
            f"tokens {_tokens(node.get('usage')) or '—'}, cost {_cost(node.get('usage')) or '—'}",
            highlight=False,
        )


def _print_stats(stats: dict[str, Any], agent: str) -> None:
    """The agent's stats, grouped by model: what the stats endpoint answers from its rollups."""
    table = Table(title=f"{agent}: stats by model ({stats['percentiles']})")
    for column in ("model", "runs", "success", "p50", "p95", "tokens in / out", "cost"):
        table.add_column(column, no_wrap=True, justify="left" if column == "model" else "right")
    for row in [*stats["groups"], {**stats, "key": "all"}]:
        ms, tokens = row["execution_time_ms"], row["tokens"]
        rate = row["success_rate"]
        table.add_row(
            str(row["key"] or "(none)"),
            str(row["total"]),
            "—" if rate is None else f"{rate:.0%}",
            "—" if ms["p50"] is None else f"{ms['p50'] / 1000:.3f} s",
            "—" if ms["p95"] is None else f"{ms['p95'] / 1000:.3f} s",
            f"{tokens['input']['sum']:,} / {tokens['output']['sum']:,}",
            ", ".join(
                f"{Decimal(c['sum']).quantize(Decimal('0.0001'))} {currency}"
                for currency, c in row["cost"].items()
            ),
        )
    console.print(table)


def _tokens(usage: dict[str, Any] | None) -> str:
    if not usage:
        return ""
    return f"{usage.get('input_tokens') or 0:,} / {usage.get('output_tokens') or 0:,}"


def _cost(usage: dict[str, Any] | None) -> str:
    cost = (usage or {}).get("cost")
    if not cost:
        return ""
    return f"{Decimal(cost['amount']).quantize(Decimal('0.0001'))} {cost['currency']}"


async def run_demo(*, keep: bool) -> int:
    # A topic created a moment ago makes the first sends retry once on its leader: aiokafka
    # warns, retries and succeeds, which is nothing a person running the demo needs to read.
    logging.getLogger("aiokafka").setLevel(logging.ERROR)
    settings = ServicesSettings()
    began = time.monotonic()
    console.print("[bold]agent-history demo[/]: starting Kafka and PostgreSQL on 127.0.0.1 …")
    was_running = services.status(settings)
    status = await asyncio.to_thread(services.up, settings)
    api = ApiSettings(database_url=status.database_url, port=free_port(ApiSettings().port))
    projector = ProjectorSettings(
        kafka_bootstrap_servers=status.kafka_bootstrap_servers, database_url=status.database_url
    )
    # Heartbeats every second and a verdict after 3 s without one, so that the demo shows a
    # lost worker's run timed out within seconds (the defaults are 15 s and 60 s).
    producer = ProducerSettings(
        kafka_bootstrap_servers=status.kafka_bootstrap_servers,
        source="agent-history/demo",
        heartbeat_interval_ms=1000,
    )
    watchdog = WatchdogSettings(
        kafka_bootstrap_servers=status.kafka_bootstrap_servers,
        database_url=status.database_url,
        lost_after_seconds=3,
        watchdog_interval_seconds=0.5,
    )
    await asyncio.to_thread(migrate, api)
    await ensure_topics(producer)
    console.print("migrated the database, created the topics; starting projector and API …")
    stop_demo_processes(settings)
    _start(settings.state_dir, "projector", projector)
    _start(settings.state_dir, "api", api)
    _start(settings.state_dir, "watchdog", watchdog)
    base = f"http://{api.host}:{api.port}"
    try:
        # The demo reads as an operator: a token with the scope that sees every user's runs.
        operator_id = uuid.uuid4()
        token = mint_token(api, operator_id, all_scope=True)
        operator = {"Authorization": f"Bearer {token}"}
        still_running = asyncio.Event()
        async with Publisher(producer) as publisher:
            samples = await record_samples(publisher, random.Random(7), still_running)
            console.print(
                f"published {samples.published} agent runs through track_execution, four of "
                "them sub-runs of one, one from a worker that dies; waiting for the projection "
                "and the watchdog …"
            )
            async with httpx.AsyncClient(base_url=base, timeout=5, headers=operator) as client:
                path = f"/api/v1/agent-studio/agents/{samples.agent_id}/executions"
                page = await _wait_projected(client, path, samples.runs)
                tree_path = f"/api/v1/agent-studio/executions/{samples.tree_root}/tree"
                tree = await _wait_tree(client, tree_path, samples.tree_size)
                stats_path = f"{path}/stats"
                stats = (await client.get(stats_path, params={"group_by": "model"})).json()
            still_running.set()
            await samples.still_running
        _print_history(page, "Research Assistant")
        console.print(f"GET {base}{path}", soft_wrap=True)
        _print_tree(tree)
        console.print(f"GET {base}{tree_path}", soft_wrap=True)
        _print_stats(stats, "Research Assistant")
        console.print(f"GET {base}{stats_path}?group_by=model", soft_wrap=True)
        console.print(
            f"metrics: {base}/metrics (API), http://{projector.metrics_host}:"
            f"{projector.metrics_port}/metrics (projector), port {watchdog.metrics_port} "
            "(watchdog); health on /healthz and /readyz of each",
            soft_wrap=True,
        )
        console.print(f"the event contract: {base}/asyncapi (AsyncAPI 3.0, also as JSON)")
    finally:
        if not keep:
            stop_demo_processes(settings)
            if not (was_running.kafka_running and was_running.postgres_running):
                await asyncio.to_thread(services.down, settings)
    if keep:
        console.print(f"left running: API {base}/docs, projector, watchdog, Kafka, PostgreSQL")
        console.print(
            f"an operator token (valid 1 h): {operator['Authorization'][7:]}", soft_wrap=True
        )
        code = mint_login_code(api, operator_id, all_scope=True)
        link = login_url(base, code, f"/ui/agents/{samples.agent_id}")
        console.print(f"the page: {base}/ui/; sign in with this one-time link (5 min):")
        console.print(link, soft_wrap=True)
        console.print("stop everything with: agent-history services down")
    console.print(f"done in {time.monotonic() - began:.1f} s")
    return 0
