"""Projector benchmark: live drain, replay, freshness, and the limits they are measured against.

    .venv/bin/python -m bench.projector --events 1000000

Uses the services of AGENT_HISTORY_KAFKA_BOOTSTRAP_SERVERS / AGENT_HISTORY_DATABASE_URL (the
local ones by default) but only a database and topics of its own, dropped at the end. Prints one
table and writes it to docs/benchmarks.md under "## Projector".
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shlex
import sys
import time
import uuid
from collections import Counter
from pathlib import Path

import asyncpg

from agent_history.api.settings import ApiSettings
from agent_history.devservices.processes import free_port
from agent_history.projector.settings import ProjectorSettings
from agent_history.read_model.tables import ROLLUPS
from bench import environment, freshness, live, naive, references, report
from bench.environment import Bench
from bench.report import Row, per_second
from bench.workload import Workload, generate, publish

ROOT = Path(__file__).resolve().parents[1]
STEPS = ("read", "live", "copy", "replay", "naive", "freshness")
ORDER = (
    "live",
    "vs copy",
    "live rss",
    "rollup tables",
    "vs naive",
    "replay",
    "replay vs copy",
    "replay rss",
    "freshness",
    "scale-out",
    "copy",
    "copy bare",
    "read",
    "naive",
)
# The projector's resident set size while it drains or replays: at most this, and flat.
RSS_GOAL = 200 * 2**20
_CHECKSUM = """
SELECT count(*), md5(string_agg(concat_ws('|', id, agent_id, user_id, status, execution_start,
    execution_end, execution_time_ms, input_data, output_data, error_message, input_rank,
    input_time, input_event_id, terminal_event_id), ',' ORDER BY id))
FROM agent_executions
"""


async def measure_live(
    bench: Bench,
    settings: ProjectorSettings,
    events: int,
    ends: dict[int, int],
    profile: Path | None,
    processes: int = 1,
) -> tuple[Row, float, live.Memory, float]:
    """The real projector, processes of its own, from their start until caught up; with the
    CPU seconds of the projectors and the servers."""
    drained = await live.drain(
        ["projector", "--log-level", "WARNING"], settings, ends, profile, processes=processes
    )
    rate = events / drained.seconds
    who = (
        "`agent-history projector`"
        if processes == 1
        else f"{processes} x `agent-history projector` in one group"
    )
    how = (
        f"{who} from process start (incl. {drained.startup:.1f} s to the first commit) until the "
        f"checkpoints reach the end offsets; batch_max_records={settings.batch_max_records}, "
        f"batch_max_fetches={settings.batch_max_fetches}, "
        f"synchronous_commit={'on' if settings.synchronous_commit else 'off'}; "
        f"projector CPU {drained.projector_cpu:.1f} s, both cores {drained.machine_busy:.0%} busy"
        f" (CPU meanwhile: {live.describe_cpu(drained.servers_cpu)})"
    )
    what = f"live projection, backlog of {events:,} events"
    if processes > 1:
        what = f"scale-out: {processes} projector processes, same backlog"
    row = Row(
        what,
        f"{drained.seconds:.1f} s",
        per_second(events, drained.seconds),
        ">= 50,000 events/s" if processes == 1 else "",
        rate >= 50_000 if processes == 1 else None,
        how,
    )
    return row, rate, drained.memory, drained.projector_cpu + sum(drained.servers_cpu.values())


async def reset_projection(bench: Bench) -> None:
    """Empty the read model (and checkpoints), as a fresh database would be."""
    conn = await asyncpg.connect(bench.dsn())
    try:
        await conn.execute("TRUNCATE agent_executions, agents, users, projector_checkpoints")
    finally:
        await conn.close()


async def check_projection(bench: Bench, executions: int, statuses: Counter[str]) -> str:
    """What the projection holds, against what the workload generated; raises if they differ."""
    conn = await asyncpg.connect(bench.dsn())
    try:
        rows = await conn.fetch("SELECT status, count(*) FROM agent_executions GROUP BY status")
        seen = Counter({row["status"]: row["count"] for row in rows})
        checksum = await conn.fetchrow(_CHECKSUM)
    finally:
        await conn.close()
    if seen != statuses or sum(seen.values()) != executions:
        raise AssertionError(f"projected {dict(seen)}, expected {dict(statuses)}")
    return str(checksum["md5"])


async def measure_replay(
    bench: Bench,
    settings: ProjectorSettings,
    events: int,
    live_checksum: str | None,
    work: Workload,
) -> tuple[Row, float, live.Memory, float]:
    """Replay the backlog topic into a shadow table and swap it in (`agent-history replay`, a
    process of its own); time it, compare tables (with the live one, if it ran, else with
    what the workload generated)."""
    ran = await live.run_to_end(["replay", "--metrics-port", "0"], settings)
    seconds = ran.seconds
    checksum = await check_projection(bench, work.executions, work.statuses)
    if live_checksum is None:
        result = "matches the workload's statuses (no live drain to compare with)"
    else:
        same = "equals" if checksum == live_checksum else "DIFFERS FROM"
        result = f"{same} the live table (all columns but timestamps)"
    scaled = seconds * 1_000_000 / events
    row = Row(
        f"replay of the backlog ({events:,} events)",
        f"{seconds:.1f} s",
        per_second(events, seconds),
        "<= 30 s for 1M events",
        scaled <= 30,
        f"`agent-history replay` from process start until it exits, shadow swapped in; "
        f"replay_workers={settings.replay_workers}; CPU {ran.cpu:.1f} s (with its loader "
        f"processes), both cores {ran.machine_busy:.0%} busy (CPU meanwhile: "
        f"{live.describe_cpu(ran.servers_cpu)}); result {result}",
    )
    return row, events / seconds, ran.memory, ran.cpu + sum(ran.servers_cpu.values())


_ROLLUP_TABLES = """
SELECT relname, n_live_tup, n_tup_upd, n_tup_hot_upd, pg_total_relation_size(relid) AS size
FROM pg_stat_user_tables WHERE relname = ANY($1::text[]) ORDER BY relname
"""


async def rollup_tables_row(bench: Bench) -> Row:
    """The rollup tables' size after the live drain, beside their live rows: every batch
    rewrites an agent's current rows, and versions that cannot stay on their page pile up
    until VACUUM (migration 0013)."""
    conn = await asyncpg.connect(bench.dsn())
    try:
        # The drain's last statistics reach the shared counters within a second.
        await asyncio.sleep(1.5)
        tables = await conn.fetch(_ROLLUP_TABLES, [t.name for t in ROLLUPS])
    finally:
        await conn.close()
    parts = [
        f"{t['relname']} {t['size'] / 2**20:.1f} MB for {t['n_live_tup']:,} rows, "
        f"{t['n_tup_hot_upd'] / max(t['n_tup_upd'], 1):.0%} of {t['n_tup_upd']:,} updates "
        "on the row's page"
        for t in tables
    ]
    total = sum(t["size"] for t in tables)
    how = "pg_total_relation_size and pg_stat_user_tables after the drain: " + "; ".join(parts)
    return Row("rollup tables after the live drain", f"{total / 2**20:.0f} MB", how=how)


def rss_row(what: str, memory: live.Memory, children: bool = False) -> Row:
    how = f"VmRSS of the process every 50 ms: {memory.describe()}"
    if children:
        how = (
            f"VmRSS of the process and its children (loader processes), summed, every 50 ms: "
            f"{memory.describe()}; one process at most {memory.largest / 2**20:.0f} MB"
        )
    return Row(
        f"{what} RSS",
        f"{memory.peak / 2**20:.0f} MB",
        "",
        f"<= {RSS_GOAL // 2**20} MB, flat",
        memory.peak <= RSS_GOAL,
        how,
    )


async def measure_freshness(
    bench: Bench, settings: ProjectorSettings, seconds: float, rate: float = 2000.0
) -> Row:
    """Steady ``rate`` events/s through the projector; p50/p99 until the API shows the end."""
    port = free_port()
    api_settings = ApiSettings(database_url=bench.database_url, port=port)
    base = f"http://127.0.0.1:{port}"
    token, dsn = _token(api_settings), None
    async with (
        live.service(["projector", "--log-level", "WARNING"], settings),
        live.service(["api"], api_settings) as api,
    ):
        await live.api_ready(base, api)
        if token is None:
            dsn = bench.dsn()
        every = max(1, round(rate / 3 / 25))  # about 25 followed executions a second
        result = await freshness.measure(
            bench.kafka, settings.topic, base, token, dsn, rate, seconds, sample_every=every
        )
    return Row(
        f"freshness at a steady {rate:,.0f} events/s",
        f"p50 {result.p50_ms:.0f} ms, p99 {result.p99_ms:.0f} ms (max {result.max_ms:.0f})",
        f"{result.rate:,.0f} published",
        "p99 <= 50 ms",
        result.p99_ms <= 50,
        f"publish of a terminal event (idempotent producer, linger_ms=5) until a GET through "
        f"the {result.through} shows it; {result.samples} samples over {seconds:.0f} s, "
        f"polled every 2 ms; projector batch_timeout_ms={settings.batch_timeout_ms}",
    )


async def measure_copy(bench: Bench, events: int, triggers: bool) -> tuple[Row, float, float]:
    count, seconds, cpu = await references.copy_rows(bench.dsn(), triggers=triggers)
    what = "with the read model's triggers (status counts, rollups)" if triggers else "bare"
    row = Row(
        f"reference: COPY of the final rows, {what}",
        f"{count:,} rows in {seconds:.1f} s",
        per_second(events, seconds),
        how=f"{count / seconds:,.0f} rows/s; asyncpg copy_records_to_table of every stored "
        "column into an empty twin table with the same indexes and foreign keys"
        + (" and statement triggers filling twin count and rollup tables" if triggers else "")
        + f", one commit; events/s = backlog events / COPY time; CPU meanwhile: "
        f"{live.describe_cpu(cpu)}",
    )
    return row, events / seconds, sum(cpu.values())


async def measure_copies(
    bench: Bench,
    events: int,
    rows: dict[str, Row],
    rates: dict[str, float],
    cpus: dict[str, float],
) -> None:
    for key, triggers in (("copy", True), ("copy bare", False)):
        rows[key], rates[key], cpus[key] = await measure_copy(bench, events, triggers)


def _token(settings: ApiSettings) -> str | None:
    try:
        from agent_history.api.auth import mint_token
    except ImportError:
        return None
    return mint_token(settings, uuid.uuid4(), all_scope=True)


async def measure_naive(bench: Bench, values: list[bytes], events: int, budget: float) -> Row:
    """The per-event ORM projector on a sample, in a database of its own."""
    url = bench.database_url.replace(f"bench_{bench.run}", f"bench_{bench.run}_naive")
    await environment.create_database(bench, url)
    try:
        applied, seconds = await naive.project_naively(url, values[:events], budget)
    finally:
        await environment.drop_database(bench, url)
    return Row(
        "reference: naive projector (ORM load/modify/commit per event)",
        f"{applied:,} events in {seconds:.1f} s",
        per_second(applied, seconds),
        "",
        None,
        "SQLAlchemy ORM session.get of execution, agent and user, fold in Python, commit, "
        "per event; first events of the same backlog, handed over without Kafka (an upper bound)",
    )


async def run(args: argparse.Namespace) -> None:
    bench = environment.from_environment()
    steps = set(args.steps.split(","))
    overrides = dict(item.split("=", 1) for item in args.set)
    settings = bench.projector_settings("backlog", **overrides)
    machine = await environment.describe_machine(bench)
    rows: dict[str, Row] = {}
    notes: list[str] = []
    rates: dict[str, float] = {}
    cpus: dict[str, float] = {}  # CPU seconds of every process at work in a step
    await environment.create_database(bench, bench.database_url)
    try:
        async with environment.topics(bench, "backlog", "fresh"):
            start = time.perf_counter()
            work = generate(args.events, environment.PARTITIONS)
            made = time.perf_counter()
            await publish(bench.kafka, settings.topic, work.records)
            ends = await environment.end_offsets(bench, settings.topic)
            events = sum(ends.values())
            sample = [value for _, _, value in work.records[: args.naive_events]]
            notes.append(
                f"Workload: {events:,} records for {work.executions:,} executions (Queued, "
                f"Started, a terminal event; 5 % with a racing second terminal; 5 % of events "
                f"delivered twice), ~{sum(len(v) for *_, v in work.records) // events} bytes "
                f"each, keyed by execution id over {environment.PARTITIONS} partitions; "
                f"generated in {made - start:.0f} s, published in "
                f"{time.perf_counter() - made:.0f} s."
            )
            work.records = []
            if "read" in steps:
                count, seconds = await references.read_topic(bench.kafka, settings.topic, ends)
                rates["read"] = count / seconds
                rows["read"] = Row(
                    "reference: raw aiokafka consumption (read limit)",
                    f"{seconds:.1f} s",
                    per_second(count, seconds),
                    how="AIOKafkaConsumer.getmany from the beginning, records discarded",
                )
            # The COPY reference copies the projected rows: after the live drain, else after
            # replay (which then runs first, on an empty read model).
            checksum = None
            if "live" in steps:
                rows["live"], rates["live"], memory, cpus["live"] = await measure_live(
                    bench, settings, events, ends, args.profile
                )
                rows["live rss"] = rss_row("live projector", memory)
                rows["rollup tables"] = await rollup_tables_row(bench)
                checksum = await check_projection(bench, work.executions, work.statuses)
                if "copy" in steps:
                    await measure_copies(bench, events, rows, rates, cpus)
            if "replay" in steps:
                rows["replay"], rates["replay"], memory, cpus["replay"] = await measure_replay(
                    bench, settings, events, checksum, work
                )
                rows["replay rss"] = rss_row("replay", memory, children=True)
                if "copy" in steps and "live" not in steps:
                    await measure_copies(bench, events, rows, rates, cpus)
            if "live" in steps and args.scale_out > 1:
                await reset_projection(bench)
                group = f"{settings.consumer_group}-scale-out"  # no Kafka offsets yet
                rows["scale-out"], *_ = await measure_live(
                    bench,
                    settings.model_copy(update={"consumer_group": group}),
                    events,
                    ends,
                    None,
                    processes=args.scale_out,
                )
                await check_projection(bench, work.executions, work.statuses)
            if "naive" in steps:
                rows["naive"] = await measure_naive(
                    bench, sample, args.naive_events, args.naive_seconds
                )
                rates["naive"] = float(rows["naive"].rate.replace(",", "") or 0)
            if "freshness" in steps:
                fresh = bench.projector_settings("fresh", **overrides)
                rows["freshness"] = await measure_freshness(
                    bench, fresh, args.freshness_seconds, args.freshness_rate
                )
    finally:
        await environment.drop_database(bench, bench.database_url)
    rows.update(_ratios(rates, cpus, events))
    table = [rows[k] for k in ORDER if k in rows]
    command = ".venv/bin/python -m bench.projector " + shlex.join(sys.argv[1:])
    report.show(table, "Projector", f"{command}\n{machine}")
    if args.write:
        section = report.markdown(table, command, machine, notes)
        report.write_section(ROOT / "docs" / "benchmarks.md", section)


def _ratios(rates: dict[str, float], cpus: dict[str, float], events: int) -> dict[str, Row]:
    rows = {}
    for key, what, goal in (("live", "live", 0.6), ("replay", "replay", 0.8)):
        if key in rates and "copy" in rates:
            ratio, bare = rates[key] / rates["copy"], rates[key] / rates["copy bare"]
            rows[f"{key} vs copy" if key != "live" else "vs copy"] = Row(
                f"{what} vs COPY limit",
                f"{ratio:.2f} x",
                "",
                f">= {goal} x",
                ratio >= goal,
                f"against the COPY with the read model's triggers; {bare:.2f} x the bare COPY"
                + _bound(what, cpus[key], cpus["copy"], events / rates["copy"]),
            )
    if "live" in rates and rates.get("naive"):
        ratio = rates["live"] / rates["naive"]
        rows["vs naive"] = Row("live vs naive", f"{ratio:.0f} x", "", ">= 30 x", ratio >= 30)
    return rows


def _bound(what: str, cpu: float, copy_cpu: float, copy_seconds: float) -> str:
    """What the step's work allows on this machine's cores: its CPU (every process at work,
    the servers included) spread over all of them, busy throughout, against the COPY."""
    cores = os.cpu_count() or 1
    best = cpu / cores
    return (
        f"; the {what} step's processes used {cpu:.1f} s of CPU in all (the triggered COPY's "
        f"{copy_cpu:.1f} s): with all {cores} cores busy throughout it would take {best:.1f} s, "
        f"at best {copy_seconds / best:.2f} x"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--steps", default=",".join(STEPS), help=f"any of {', '.join(STEPS)}")
    parser.add_argument("--naive-events", type=int, default=20_000)
    parser.add_argument("--naive-seconds", type=float, default=40.0, help="time budget")
    parser.add_argument("--freshness-seconds", type=float, default=20.0)
    parser.add_argument("--freshness-rate", type=float, default=2000.0, help="events/s")
    parser.add_argument("--profile", type=Path, help="py-spy raw stacks of the live projector")
    parser.add_argument(
        "--scale-out", type=int, default=2, help="also drain with this many projector processes"
    )
    parser.add_argument("--set", action="append", default=[], help="projector setting=value")
    parser.add_argument("--no-write", dest="write", action="store_false", help="print only")
    asyncio.run(run(parser.parse_args()))


if __name__ == "__main__":
    main()
