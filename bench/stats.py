"""Stats benchmark: an agent's stats from rollups, beside the scan that answered them before.

    .venv/bin/python -m bench.stats [--keep-db] [--regenerate]

The API benchmark's data (bench/api_data.py: 5M executions, one agent with 1M; a kept database
is reused). Each request on the big agent runs through the app in this process (ASGI, no
sockets: the request's handling and its one statement) and its statement alone through
asyncpg, and the reference scan (bench/stats_reference.py) answering the same request through
asyncpg, all at one connection, in the same run. Counts are checked equal to the scan's and
percentiles within 1 % (per group where grouped; a daily series' counts only). Prints a table
and writes it to docs/benchmarks-stats.md.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from uuid import uuid4

import asyncpg
import httpx
from pydantic import SecretStr
from sqlalchemy.engine import make_url

from agent_history.api.app import create_app
from agent_history.api.auth import mint_token
from agent_history.api.settings import ApiSettings
from bench import api_statements, environment, stats_reference
from bench.api import PREFIX, prepare
from bench.api_rows import Shape

ROOT = Path(__file__).resolve().parents[1]
DOC = ROOT / "docs" / "benchmarks-stats.md"
_MARK = "<!-- bench.stats writes below this line -->"


async def _timed(call: Callable[[], Awaitable[Any]], rounds: int, seconds: float) -> list[float]:
    """Milliseconds of each call: a warm-up, then up to ``rounds`` calls or ``seconds``."""
    for _ in range(min(3, rounds)):
        await call()
    times: list[float] = []
    deadline = time.perf_counter() + seconds
    while len(times) < rounds and (len(times) < 5 or time.perf_counter() < deadline):
        began = time.perf_counter()
        await call()
        times.append((time.perf_counter() - began) * 1000)
    return times


def _query(
    conn: asyncpg.Connection, sql: str, args: tuple[Any, ...]
) -> Callable[[], Awaitable[Any]]:
    async def call() -> Any:
        return await conn.fetch(sql, *args)

    return call


def _p(times: list[float], q: float) -> float:
    ordered = sorted(times)
    return ordered[min(len(ordered) - 1, max(0, round(q * len(ordered)) - 1))]


def _ms(value: float) -> str:
    return f"{value:,.2f}" if value < 100 else f"{value:,.0f}"


async def run(args: argparse.Namespace) -> None:
    bench = environment.from_environment()
    url = make_url(bench.admin_url).set(database=args.database).render_as_string(False)
    dsn = bench.dsn(url)
    dataset = await prepare(bench, url, Shape(5_000_000, 1_000_000, 2_000, 50_000), args.regenerate)
    agent = dataset.big_agent
    after = (datetime.now(UTC) - timedelta(days=30)).replace(microsecond=0)
    since = after.isoformat().replace("+00:00", "Z")
    requests: list[tuple[str, dict[str, str], str | None]] = [
        ("all time", {}, None),
        ("last 30 days", {"started_after": since}, None),
        ("by model, all time", {"group_by": "model"}, "model"),
        ("by model, last 30 days", {"group_by": "model", "started_after": since}, "model"),
        ("by status, all time", {"group_by": "status"}, "status"),
        ("by status, last 30 days", {"group_by": "status", "started_after": since}, "status"),
        ("daily series, last 30 days", {"interval": "day", "started_after": since}, "day"),
        ("daily series, all time", {"interval": "day"}, "day"),
    ]
    settings = ApiSettings(database_url=url, jwt_secret=SecretStr("b" * 48))
    token = mint_token(settings, uuid4(), all_scope=True)
    target = f"{PREFIX}/agents/{agent}/executions/stats"
    targets = {
        name: f"{target}?{httpx.QueryParams(params)}" if params else target
        for name, params, _ in requests
    }
    captured = await api_statements.capture(settings, token, targets)
    app = create_app(settings)
    conn = await asyncpg.connect(dsn)
    lines = []
    try:
        async with (
            app.router.lifespan_context(app),
            httpx.AsyncClient(
                transport=httpx.ASGITransport(app=app),
                base_url="http://api",
                headers={"Authorization": f"Bearer {token}"},
            ) as client,
        ):
            for name, params, group in requests:
                (sql, sql_args), *_ = captured[name].statements
                reference = stats_reference.statement(group, "started_after" in params)
                ref_args = (agent, after) if "started_after" in params else (agent,)

                async def api_call(name: str = name) -> dict[str, Any]:
                    response = await client.get(targets[name])
                    response.raise_for_status()
                    body: dict[str, Any] = response.json()
                    return body

                api = await _timed(api_call, args.rounds, args.seconds)
                new = await _timed(_query(conn, sql, sql_args), args.rounds, args.seconds)
                old = await _timed(_query(conn, reference, ref_args), 5, args.seconds)
                body = await api_call()
                scanned = await conn.fetch(reference, *ref_args)
                check = _check(body, scanned, group)
                lines.append(
                    f"| {name} | {_ms(_p(api, 0.5))} | {_ms(_p(api, 0.99))} | "
                    f"{_ms(_p(new, 0.5))} | {_ms(_p(new, 0.99))} | "
                    f"{_ms(_p(old, 0.5))} | {_ms(_p(old, 0.99))} | "
                    f"{statistics.median(old) / statistics.median(api):,.0f} x | "
                    f"{'yes' if _p(api, 0.99) <= 10 else 'no'} | {check} |"
                )
                print(lines[-1], flush=True)
    finally:
        await conn.close()
        if not args.keep_db:
            await environment.drop_database(bench, url)
    machine = await environment.describe_machine(bench)
    _write(lines, machine, dataset.generated_at, dataset.reused, args)


def _check(body: dict[str, Any], scanned: list[asyncpg.Record], group: str | None) -> str:
    """The answer's counts equal the scan's, and its percentiles are within 1 % of
    percentile_disc: over all runs, or per model or status (a daily series: counts only)."""
    total = sum(sum(r[s] for s in body["counts"]) for r in scanned)
    if total != body["total"]:
        return f"TOTAL DIFFERS ({body['total']} vs {total})"
    if group == "day":
        return "counts equal"
    if group is None:
        answers = [(body, scanned[0])]
    else:
        groups = {g["key"]: g for g in body["groups"]}
        answers = [(groups[r["key"]], r) for r in scanned]
    for answer, row in answers:
        if answer["counts"] != {s: row[s] for s in answer["counts"]}:
            return f"COUNTS DIFFER ({answer.get('key')})"
        if row["pcts"] is None:
            continue
        have = [answer["execution_time_ms"][p] for p in ("p50", "p95", "p99")]
        if any(abs(h - w) > 0.01 * w for h, w in zip(have, row["pcts"], strict=True)):
            return f"PERCENTILES {have} vs {row['pcts']}"
    return "counts equal, percentiles within 1 %" + (" per group" if group else "")


def _write(lines: list[str], machine: str, generated: str, reused: bool, args: Any) -> None:
    when = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    table = "\n".join(
        [
            f"`.venv/bin/python -m bench.stats`, one run ({when}; data generated {generated}"
            f"{', reused from a kept database' if reused else ''}). {machine}",
            "",
            "| request (big agent, 1M runs) | API p50 ms | API p99 ms | statement p50 ms | "
            "statement p99 ms | scan p50 ms | scan p99 ms | scan / API | API p99 <= 10 ms "
            "| check |",
            "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
            *lines,
        ]
    )
    text = DOC.read_text() if DOC.exists() else f"# Stats benchmark\n\n{_MARK}\n"
    head = text.split(_MARK)[0]
    DOC.write_text(f"{head}{_MARK}\n\n{table}\n")
    print(f"wrote {DOC.relative_to(ROOT)}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--database", default="bench_api_5000000")
    parser.add_argument("--regenerate", action="store_true", help="generate even if kept")
    parser.add_argument("--keep-db", action="store_true", help="keep the database for next time")
    parser.add_argument("--rounds", type=int, default=300, help="requests per cell at most")
    parser.add_argument("--seconds", type=float, default=5, help="per cell at most")
    asyncio.run(run(parser.parse_args()))


if __name__ == "__main__":
    main()
