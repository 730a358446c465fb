"""History API benchmark: latency and throughput over HTTP, beside the database's own limit.

    .venv/bin/python -m bench.api [--regenerate] [--keep-db]

Uses the PostgreSQL server of AGENT_HISTORY_DATABASE_URL (the local one by default) but only a
database of its own, filled with COPY (bench/api_data.py) and dropped at the end unless
--keep-db (a kept one is reused by the next run). Runs the API as its own process
(`python -m agent_history.server api`), loads it with wrk (bench/api_load.py), replays the
statements it sends straight through asyncpg, profiles it with py-spy where a goal is missed,
prints one table and writes docs/benchmarks-api.md.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import os
import secrets
import shlex
import sys
import time
from datetime import timedelta
from functools import partial
from pathlib import Path
from uuid import uuid4

import asyncpg
import httpx
from pydantic import SecretStr
from sqlalchemy.engine import make_url

from agent_history.api.auth import mint_token
from agent_history.api.settings import ApiSettings
from agent_history.devservices.processes import free_port
from agent_history.read_model.db import DatabaseSettings
from agent_history.read_model.migrate import migrate
from bench import (
    api_data,
    api_doc,
    api_floor,
    api_profile,
    api_report,
    api_statements,
    environment,
    live,
)
from bench.api_cells import DROPPED, Runner, quiet, wait_for_database
from bench.api_data import Dataset
from bench.api_load import Statements
from bench.api_report import Cell, Scenario
from bench.api_rows import Shape

ROOT = Path(__file__).resolve().parents[1]
API_CODE = ROOT / "api" / "agent_history" / "api"
ENGINE_CODE = ROOT / "migrations" / "agent_history" / "read_model" / "db.py"
WORKER_CODE = ROOT / "server" / "agent_history" / "server" / "bootstrap.py"
PREFIX = "/api/v1/agent-studio"
DEPTH = 500_000


def depth(dataset: Dataset) -> int:
    """How deep the deep pages are: 500,000 rows, or half the big agent's when it is smaller."""
    return min(DEPTH, dataset.shape.big // 2)


def scenarios(dataset: Dataset, cursor: str) -> list[Scenario]:
    agent = f"{PREFIX}/agents/{dataset.big_agent}/executions"
    deep = depth(dataset)
    month = [dataset.first_day + timedelta(days=d) for d in (180, 210)]
    after, before = (m.strftime("%Y-%m-%dT%H:%M:%SZ") for m in month)
    return [
        Scenario("first", "first page", f"{agent}?limit=50", goal=True),
        Scenario("offset", f"offset {deep:,}", f"{agent}?limit=50&offset={deep}"),
        Scenario("cursor", f"cursor {deep:,} deep", f"{agent}?limit=50&cursor={cursor}", goal=True),
        Scenario(
            "filtered",
            "filtered: failed, 30 days",
            f"{agent}?limit=50&status=failed&started_after={after}&started_before={before}",
        ),
        Scenario("stats", "stats", f"{agent}/stats"),
    ]


async def prepare(bench: environment.Bench, url: str, shape: Shape, regenerate: bool) -> Dataset:
    """The database of ``url`` holding ``shape``: a kept one as it is, else generated."""
    name = make_url(url).database
    admin = await asyncpg.connect(bench.dsn(bench.admin_url))
    try:
        exists = await admin.fetchval(
            "SELECT EXISTS (SELECT FROM pg_database WHERE datname = $1)", name
        )
    finally:
        await admin.close()
    if exists and not regenerate:
        await asyncio.to_thread(migrate, DatabaseSettings(database_url=url))
        conn = await asyncpg.connect(bench.dsn(url))
        try:
            kept = await api_data.read_marker(conn)
        finally:
            await conn.close()
        if kept is not None and kept.shape == shape:
            return kept
    for attempt in (1, 2, 3):
        await wait_for_database(bench.dsn(bench.admin_url))
        await environment.drop_database(bench, url)
        await environment.create_database(bench, url)
        print(f"generating {shape.executions:,} executions into {name} ...", file=sys.stderr)
        try:
            return await api_data.generate(bench.dsn(url), shape)
        except DROPPED as error:
            if attempt == 3:
                raise
            print(f"load interrupted ({error}); starting over", file=sys.stderr)
    raise AssertionError("unreachable")


async def _deep_cursor(base: str, token: str, dataset: Dataset) -> str:
    """The next_cursor of the page that ends depth() rows into the big agent's history."""
    async with httpx.AsyncClient(base_url=base, timeout=120) as client:
        response = await client.get(
            f"{PREFIX}/agents/{dataset.big_agent}/executions",
            params={"limit": 50, "offset": depth(dataset) - 50},
            headers={"Authorization": f"Bearer {token}"},
        )
    response.raise_for_status()
    cursor: str = response.json()["next_cursor"]
    return cursor


async def measure_floor(
    args: argparse.Namespace, settings: ApiSettings, token: str, target: str, work: Statements
) -> Cell:
    """The first page at 32 connections from bench/api_floor.py's minimal app, with the API's
    workers and pool size: the rate no Python HTTP API on this machine goes beyond."""
    port = free_port()
    statements = api_floor.save(work, live.LOGS / f"floor-{os.getpid()}.pickle")
    command = [str(port), str(args.workers), str(statements)]
    async with live.service(command, settings, module=api_floor.__name__) as floor:
        base = f"http://127.0.0.1:{port}"
        await live.api_ready(base, floor)
        runner = Runner(args, base, token, "", floor.pid)
        try:
            await runner.warm(target)
            print("the floor: first page, 32 conn", file=sys.stderr)
            return await runner.cell(partial(runner.http, target, 32, args.seconds))
        finally:
            runner.pool.shutdown()


def _code_version() -> str:
    """A short hash of the API's code, engine settings and worker set-up as measured (they
    change)."""
    digest = hashlib.sha256()
    for path in sorted([*API_CODE.glob("*.py"), ENGINE_CODE, WORKER_CODE]):
        digest.update(path.read_bytes())
    return digest.hexdigest()[:12]


async def run(args: argparse.Namespace) -> None:
    began = time.monotonic()
    bench = environment.from_environment()
    url = make_url(bench.admin_url).set(database=args.database).render_as_string(False)
    dsn = bench.dsn(url)
    shape = Shape(args.executions, args.big, args.agents, args.users)
    dataset = await prepare(bench, url, shape, args.regenerate)
    measured = time.monotonic()
    try:
        settings = ApiSettings(
            database_url=url,
            jwt_secret=SecretStr(secrets.token_urlsafe(48)),
            port=args.api_port or free_port(),
        )
        token = mint_token(settings, uuid4(), all_scope=True, ttl=timedelta(hours=2))
        base = f"http://127.0.0.1:{settings.port}"
        serve = ["api", "--port", str(settings.port), "--workers", str(args.workers)]
        async with live.service(serve, settings) as server:
            await live.api_ready(base, server)
            plan = scenarios(dataset, await _deep_cursor(base, token, dataset))
            works = await api_statements.capture(settings, token, {s.name: s.target for s in plan})
            reads = {
                s.name: [await api_statements.explain(dsn, *st) for st in works[s.name].statements]
                for s in plan
            }
            drift = {
                s.name: await api_statements.plan_drift(dsn, *works[s.name].statements[i])
                for s in plan
                for i, (_, _, ms) in enumerate(reads[s.name])
                if ms > 20
            }
            runner = Runner(args, base, token, dsn, server.pid)
            try:
                print("waiting for a quiet machine ...", file=sys.stderr)
                background = await quiet(args.settle)
                lines = [line for s in plan for line in await runner.measure(s, works[s.name])]
                first = next(x for x in lines if x.scenario.kind == "first" and x.connections > 1)
                offered = first.api.result.rate / 2
                print(f"first page, open loop at {offered:,.0f} req/s", file=sys.stderr)
                paced = await runner.paced(plan[0].target, offered, args.seconds)
                missed = [s for s in plan if any(x.scenario == s and x.missed for x in lines)]
                profiles = await runner.profiles(missed)
            finally:
                runner.pool.shutdown()
        floor = await measure_floor(args, settings, token, plan[0].target, works[plan[0].name])
        machine = await api_report.describe_machine(dsn, runner.generator, background, args.workers)
        command = shlex.join([".venv/bin/python", "-m", "bench.api", *sys.argv[1:]])
        report = api_report.Report(
            command=command,
            machine=machine,
            dataset=dataset,
            lines=lines,
            reads=reads,
            works=works,
            drift=drift,
            profiles=profiles,
            profiler="skipped (--no-profile)"
            if args.no_profile
            else "py-spy is not installed (bench/api_profile.py says how)"
            if api_profile.py_spy() is None
            else "",
            seconds=time.monotonic() - measured,
            cell_seconds=(args.seconds, args.max_seconds),
            code=_code_version(),
            paced=paced,
            rss=runner.rss,
            floor=floor,
        )
        api_report.show(report)
        path = ROOT / "docs" / "benchmarks-api.md"
        path.parent.mkdir(parents=True, exist_ok=True)
        api_doc.write(path, api_doc.markdown(report))
        print(f"wrote {path.relative_to(ROOT)}; run took {time.monotonic() - began:.0f} s")
    finally:
        if not args.keep_db:
            await environment.drop_database(bench, url)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--executions", type=int, default=5_000_000)
    parser.add_argument("--big", type=int, default=1_000_000, help="executions of the big agent")
    parser.add_argument("--agents", type=int, default=2_000)
    parser.add_argument("--users", type=int, default=50_000)
    parser.add_argument("--database", help="default: bench_api_<executions>")
    parser.add_argument("--regenerate", action="store_true", help="generate even if kept")
    parser.add_argument("--keep-db", action="store_true", help="keep the database for next time")
    parser.add_argument("--seconds", type=int, default=10, help="per measurement")
    parser.add_argument("--max-seconds", type=int, default=30, help="for slow ones at 32")
    parser.add_argument(
        "--workers", type=int, default=os.cpu_count() or 1, help="API processes (--workers)"
    )
    parser.add_argument(
        "--api-port", type=int, default=0, help="the API's port (default: a free one)"
    )
    parser.add_argument("--load-generator", choices=("wrk", "python"), default="wrk")
    parser.add_argument("--no-profile", action="store_true", help="no py-spy profile")
    parser.add_argument(
        "--settle", type=float, default=60, help="wait up to this long for an idle machine"
    )
    args = parser.parse_args()
    args.database = args.database or f"bench_api_{args.executions}"
    asyncio.run(run(args))


if __name__ == "__main__":
    main()
