"""What to change in the API, from one run's profile and EXPLAIN numbers.

The changes are the API owners' to make; this only proposes them, each with the figure that
motivates it, and leaves out a proposal whose cost did not show in this run's profile (under
1 % of the samples: already done, or not worth it).
"""

from __future__ import annotations

from bench.api_report import Report, ms

_SHOWS = 0.01


def _share(report: Report, prefix: str) -> float:
    """The largest share of samples that a group starting with ``prefix`` had in a profile."""
    return max(
        (share for p in report.profiles for g, share in p.groups if g.startswith(prefix)),
        default=0.0,
    )


def _reads_of(report: Report, kind: str) -> list[tuple[int, int, float]]:
    name = next(x.scenario.name for x in report.lines if x.scenario.kind == kind)
    return report.reads[name]


def _by_profile(report: Report) -> list[tuple[float, str]]:
    """(share of samples, proposal) for what the profile measures."""
    s = {
        key: _share(report, key)
        for key in ("sync", "pool pre-ping", "new database", "rows to", "response", "uvicorn acc")
    }
    return [
        (
            s["sync"],
            f"Make plain-function dependencies `async def` (api/routes.py): FastAPI runs a plain "
            f"one in its thread pool, two thread hand-offs per request: {s['sync']:.0%}.",
        ),
        (
            s["pool pre-ping"],
            f"Drop `pool_pre_ping=True` for the API (agent_history/db.py): a `SELECT` round trip "
            f"on every checkout, {s['pool pre-ping']:.0%} of the samples. A connection that "
            "died meanwhile then fails its request once, as a 503 problem; `pool_recycle` "
            "retires idle ones.",
        ),
        (
            s["new database"],
            "Size the pool to the concurrency one process serves "
            "(`AGENT_HISTORY_DATABASE_POOL_SIZE` ≥ 32 here): with 10 + 10 overflow, 32 "
            f"concurrent requests keep opening and closing connections: {s['new database']:.0%}.",
        ),
        (
            s["rows to"] + s["response"],
            f"Validate a page once, not twice: `ExecutionSummary.from_row` validates every row "
            f"({s['rows to']:.0%}), then FastAPI validates the returned page again against the "
            f"response model and serialises it ({s['response']:.0%}). Build the rows with "
            "`model_construct` (they come from our own table), or serialise them once (a "
            "TypeAdapter, or orjson) into a `Response` and keep the schema for OpenAPI with "
            "`response_model=`.",
        ),
        (
            s["uvicorn acc"],
            f"Switch uvicorn's access log off (`access_log=False`; log at the proxy): "
            f"{s['uvicorn acc']:.0%}.",
        ),
    ]


def proposals(report: Report) -> list[str]:
    first = report.line("first", 32)
    offset = _reads_of(report, "offset")[0]
    stats = _reads_of(report, "stats")[0]
    filtered = _reads_of(report, "filtered")
    items = [text for share, text in _by_profile(report) if share >= _SHOWS]
    items += [
        "Fewer round trips per page: a cursor page is one statement, which is a snapshot by "
        "itself, so it needs no BEGIN REPEATABLE READ ... COMMIT around it (3 round trips "
        "become 1); the first page can read its total from the counts table in the same "
        "statement, as a scalar subquery (4 become 1). BEGIN / COMMIT / ROLLBACK alone were "
        f"{_share(report, 'BEGIN'):.0%} of the samples.",
        f"Then scale out: the API is CPU-bound in one process, {first.cpu_per_request:.2f} ms of "
        f"CPU per first page, so 5,000 requests/s takes ~{5 * first.cpu_per_request:.0f} cores "
        "of it today. Once the changes above bring that well under a millisecond, a few "
        "uvicorn workers (`--workers`) or replicas on cores of their own get there, with "
        "PostgreSQL on cores of its own too (here the API, the database and the load "
        "generator share two, so even the DB column stays far below 5,000/s).",
        f"Bound deep offsets: each costs {ms(offset[2])} ms of database time and a few dozen at "
        "once saturate the server for everyone. Refuse offsets past, say, 10,000 with a 422 "
        "that points to `next_cursor` (already on every page, offset pages included), or give "
        "list statements a `statement_timeout`.",
        f"Stats from a projection, not a scan: every request reads the agent's {stats[0]:,} "
        f"rows ({stats[1]:,} buffers, {ms(stats[2])} ms). Duration histograms per agent and "
        "hour (counts per log-spaced bucket), kept by the projector like the status counts, "
        "give counts and percentiles (to a bucket's width) from a few hundred rows.",
    ]
    if len(filtered) > 1:
        items.append(
            f"The filtered page's exact total is its cost: the page takes {ms(filtered[0][2])} "
            f"ms, the count over the time window {ms(filtered[-1][2])} ms. Mark `total` as an "
            "estimate there (the issue allows it when a time range makes an exact count "
            "expensive) or leave it out."
        )
    return [
        "## Proposals (not made here: api/ is its owners')",
        "",
        *(f"{n}. {text}" for n, text in enumerate(items, 1)),
    ]
