"""docs/benchmarks-api.md: the table of one run and what it shows, in numbers from that run."""

from __future__ import annotations

from pathlib import Path

from bench.api_profile import RATE, Profile
from bench.api_report import (
    GOAL_PACED_P99_MS,
    GOAL_RATIO,
    GOAL_RSS_MB,
    HEADERS,
    SERVER,
    Line,
    Report,
    ms,
    paced_lines,
    rate,
)
from bench.report import table


def _data(report: Report) -> str:
    d = report.dataset
    s = d.shape
    phases = ", ".join(f"{name} {sec:.0f} s" for name, sec in d.phases.items())
    when = (
        f"reused from a kept database, generated {d.generated_at} in"
        if d.reused
        else "generated in"
    )
    return (
        f"{s.executions:,} executions in `agent_executions` ({s.big:,} of them one agent's, the "
        f"rest over {s.agents - 1:,} other agents; {s.users:,} users; execution_start over a year; "
        f"92 % completed, 6 % failed, 2 % cancelled, the newest 0.1 % mostly running or queued), "
        f"{when} {d.seconds:.0f} s ({phases}) by `bench/api_data.py`: rows made by two worker "
        "processes and streamed with COPY into the migrated table without its keys and indexes, "
        "which are then rebuilt from their own definitions (checked equal to the migrated ones), "
        "then VACUUM ANALYZE."
    )


def _requests(report: Report) -> str:
    offset = next(x.scenario.name for x in report.lines if x.scenario.kind == "offset")
    depth = offset.split()[-1].replace(",", "")
    return (
        "The rows, all on the big agent, 50 per page, payloads left out (the default): "
        "`GET /api/v1/agent-studio/agents/{agent}/executions?limit=50` (first page, its exact "
        f"total from the status counts); `&offset={depth}`; `&cursor=…`, the `next_cursor` of "
        "the page that ends at that depth (one request before measuring), so the cursor page "
        "is the same rows as the offset page; `&status=failed&started_after=…&started_before=…` "
        "(30 days in the middle of the year, with its exact total counted); and "
        "`/executions/stats` over all of the agent's executions. Profiles: py-spy (not a "
        "project dependency; installed by hand into .venv with `uv pip install py-spy`), "
        f"{RATE} Hz on the API process for {report.cell_seconds[0]} s at 32 connections, "
        "apart from the measurements."
    )


def _paced(report: Report) -> list[str]:
    """The open loop and the memory, with how they were measured."""
    if report.paced is None and not report.rss:
        return []
    return [
        *(f"- {line}." for line in paced_lines(report)),
        "",
        "Open loop: after the table's cells, a generator of our own (bench/api_load.py "
        "`paced_load`, asyncio on uvloop in a process of its own) sends first-page GETs on a "
        "fixed schedule at half the rate the API reached at 32 connections, each on an idle "
        "keep-alive connection or a new one, never waiting for earlier answers; each latency "
        "runs from the moment the request was due, so any stall counts for every request "
        "behind it (no coordinated omission). The generator's own cost is not what the figures "
        "measure: it runs in its own process, uses the CPU per request printed above (a small "
        "share of a core at this rate), and how late it sent is measured and printed beside "
        "the latencies (that lateness is inside them: the figures are, if anything, high). "
        f"Memory: VmRSS of every {SERVER} process below the API's, sampled every 0.25 s "
        "during the 32-connection cells and the open loop; the most each one had. The floor: "
        "bench/api_floor.py, a raw ASGI callable run by the same server with the same workers "
        "and pool size, answers each GET with the first page's captured statement on an "
        "asyncpg pool, its rows' JSON joined: HTTP, the event loop, a pooled connection and "
        "the statement, nothing else (no token, parameters, routing or metrics); what code "
        "changes to the API can approach, measured after the API's cells by the same wrk.",
        "",
    ]


def _reads(report: Report) -> list[str]:
    rows = []
    for name, reads in report.reads.items():
        work = report.works[name]
        mode = (work.isolation or "read committed").replace("_", " ")
        if not work.transaction:
            mode = "autocommit"
        rows.append(
            (
                name,
                f"{len(reads)} ({mode}{', read only' if work.readonly else ''})",
                " + ".join(f"{r:,}" for r, _, _ in reads),
                " + ".join(f"{b:,}" for _, b, _ in reads),
                " + ".join(ms(t) for _, _, t in reads),
            )
        )
    headers = ("request", "statements", "rows read", "buffers (8 kB)", "execution ms")
    return table(headers, rows)


def _drift(report: Report) -> list[str]:
    """Slow statements whose plan changes after five executions on one connection."""
    changed = [
        f"{name} {ms(custom)} ms, then {ms(generic)} ms"
        for name, (custom, generic) in report.drift.items()
        if abs(generic - custom) > 0.15 * custom
    ]
    if not changed:
        return []
    shape = report.dataset.shape
    return [
        "",
        "Plans change on a warm connection: run on one connection, a slow statement takes "
        f"(median of executions 1-5, then of 6-8) {'; '.join(changed)}. After five executions "
        "PostgreSQL may switch a prepared statement to a generic plan, made for an average "
        f"agent (~{shape.executions // shape.agents:,} rows), not for this one "
        f"({shape.big:,}). The asyncpg client reuses its "
        "connections, so its slow cells see the generic plan; the API's pool hands requests to "
        "its connections in turn, so at one connection none of them had reached a sixth "
        "execution, but under steady load every connection does.",
    ]


def _deep(report: Report) -> list[str]:
    first, offset, cursor = (report.line(k, 1) for k in ("first", "offset", "cursor"))
    deep = report.line("offset", 32)
    names = [line.scenario.name for line in (offset, cursor)]
    (o_rows, o_buf, o_ms), (c_rows, c_buf, c_ms) = (report.reads[n][0] for n in names)
    return [
        "## Deep pages: offset against cursor",
        "",
        f"An offset page makes PostgreSQL produce every row before it and throw it away: the "
        f"page at offset 500,000 walks the agent's index (agent_id, execution_start DESC, id "
        f"DESC) and fetches {o_rows:,} rows ({o_buf:,} buffers, {o_buf * 8 / 1024:,.0f} MiB "
        f"through shared buffers) to return 50, {o_ms:,.0f} ms of execution alone: "
        f"~{1000 * o_ms / max(o_rows, 1):.1f} µs per row skipped, so the cost grows linearly "
        f"with the depth. Concurrent deep pages queue for the two cores: "
        f"{ms(offset.db.result.p50_ms)} ms p50 at one connection, {ms(deep.db.result.p50_ms)} "
        f"ms at 32 ({rate(deep.db.result.rate)} pages/s) straight from asyncpg; "
        f"{ms(offset.api.result.p50_ms)} / {ms(deep.api.result.p50_ms)} ms through the API, "
        "whose pool (10 + 10 overflow) lets at most 20 of them reach the database at once. "
        "Meanwhile every other query on the server waits for the same cores and cache.",
        "",
        f"A cursor carries the last row's (execution_start, id); the next page seeks the same "
        f"index to that key with `(execution_start, id) < (…)` and reads on: {c_rows:,} rows, "
        f"{c_buf:,} buffers, {ms(c_ms)} ms of execution 500,000 rows deep, what the first page "
        f"reads. Through the API the cursor page takes {ms(cursor.api.result.p50_ms)} ms p50 "
        f"against {ms(first.api.result.p50_ms)} ms for the first page and "
        f"{ms(offset.api.result.p50_ms)} ms for the offset page "
        f"({offset.api.result.p50_ms / max(cursor.api.result.p50_ms, 1e-9):,.0f} times as "
        "long), and a walk by cursor never repeats or skips rows while new executions arrive. "
        "Offsets stay for jumping to a page number (with the exact `total`); walking a history "
        "is what cursors are for.",
    ]


def _profile(profile: Profile) -> list[str]:
    rows = [(group, f"{share:.0%}") for group, share in profile.groups if share >= 0.01]
    frames = ", ".join(f"`{frame}` {share:.0%}" for frame, share in profile.frames[:8])
    return [
        f"**{profile.label}, 32 connections**: {profile.samples:,} samples of all threads in "
        f"{profile.seconds:.0f} s at {RATE} Hz:",
        "",
        *table(("where", "share of samples"), rows),
        "",
        f"Inclusive, project and pool frames: {frames}.",
        "",
    ]


def _shortfall(line: Line) -> str:
    a, d = line.api.result, line.db.result
    core = line.api.api_cpu / a.seconds if a.seconds else 0.0
    ceiling = 1000 / line.cpu_per_request if line.cpu_per_request else 0.0
    client = 1e6 * d.client_cpu / max(1, d.requests)
    return (
        f"- **{line.scenario.name}**, 32 connections: {a.rate:,.0f} requests/s and p99 "
        f"{ms(a.p99_ms)} ms through the API, against {d.rate:,.0f}/s and p99 {ms(d.p99_ms)} ms "
        f"for the same statements straight from asyncpg. The API's processes used "
        f"{core:.2f} cores, {line.cpu_per_request:.2f} ms of CPU per request: a core of them "
        f"cannot serve more than ~{ceiling:,.0f} requests/s, and with 32 requests in "
        f"flight each one queues behind the others (Little's law: 32 / {a.rate:,.0f} per s = "
        f"{32000 / max(a.rate, 1e-9):,.0f} ms on average). Both cores were {line.api.busy:.0%} "
        f"busy meanwhile (API, PostgreSQL and wrk share them; wrk used "
        f"{1e6 * a.client_cpu / max(1, a.requests):,.0f} µs of CPU per request, the asyncpg "
        f"client {client:,.0f} µs, so the DB column is bounded by this machine, too)."
    )


def _slow(report: Report) -> list[str]:
    """Where the database time goes for the requests without a goal."""
    out = []
    for name, reads in report.reads.items():
        kind = next(x.scenario.kind for x in report.lines if x.scenario.name == name)
        if kind in ("first", "cursor"):
            continue
        parts = [
            f"statement {i} of {len(reads)} reads {rows:,} rows and {buffers:,} buffers in "
            f"{ms(t)} ms"
            for i, (rows, buffers, t) in enumerate(reads, 1)
            if t >= 5
        ]
        if parts:
            out.append(f"- **{name}** (no goal): {'; '.join(parts)}.")
    return out


def markdown(report: Report) -> str:
    missed = [line for line in report.lines if line.missed]
    profiles = [x for p in report.profiles for x in _profile(p)]
    if missed and not report.profiles:
        profiles = [f"No profile: {report.profiler}.", ""]
    body = [
        "# History API benchmark",
        "",
        f"`{report.command}`, one run ({report.when}, {report.seconds:.0f} s without data "
        f"generation; API code `agent_history/api/*.py` + `read_model/db.py` + "
        f"`server/bootstrap.py` sha256 "
        f"{report.code}…). "
        f"Machine: {report.machine}",
        "",
        f"Data: {_data(report)}",
        "",
        *table(HEADERS, [line.cells() for line in report.lines]),
        "",
        f"Goals (issue 13): first and cursor pages at 32 connections at ≥ {GOAL_RATIO} x the "
        "rate of the same statements straight through asyncpg (the `req/s API / DB` column); "
        f"first pages offered open loop at half the API's 32-connection rate with p99 ≤ "
        f"{GOAL_PACED_P99_MS:.0f} ms; ≤ {GOAL_RSS_MB:.0f} MB resident per API process under "
        "load. API columns: GETs over loopback HTTP with a bearer "
        "token (scope `executions:read:all`), closed loop, each measurement "
        f"{report.cell_seconds[0]} s (longer, up to {report.cell_seconds[1]} s, where three "
        "rounds of 32 slow requests would not fit), after a short warm-up; "
        "CPU ms/req is the API processes' CPU time per request. DB columns: the statements the "
        "API sent for that request (captured from the app itself), in the same transaction "
        "mode, through asyncpg from another process: the database's own limit. Slow requests "
        "at 32 connections finish only a few dozen times in a measurement (see the requests "
        "column): their percentiles are rough.",
        "",
        *_paced(report),
        _requests(report),
        "",
        "What each request reads (EXPLAIN ANALYZE, BUFFERS of the captured statements, one run):",
        "",
        *_reads(report),
        *_drift(report),
        "",
        *_deep(report),
        "",
        "## Where the time goes",
        "",
        *([_shortfall(line) for line in missed] or ["Every goal was met."]),
        *_slow(report),
        "",
        *profiles,
    ]
    return "\n".join(body).rstrip() + "\n"


# Where the hand-written part of the document starts; a run keeps it and rewrites the rest.
HAND_WRITTEN = "\n## What changed"


def write(path: Path, generated: str) -> None:
    """Write ``generated`` to ``path``, keeping its hand-written part (from HAND_WRITTEN)."""
    kept = ""
    if path.exists():
        text = path.read_text()
        if (start := text.find(HAND_WRITTEN)) >= 0:
            kept = text[start:]
    path.write_text(generated + kept)
