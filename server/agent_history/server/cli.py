"""The `agent-history` command. Each command builds its settings and imports its service lazily,
so a producer-only install still answers `--help`."""

from __future__ import annotations

import asyncio
import signal
import sys
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Annotated, Any
from uuid import UUID

import typer

from agent_history.server.dlq import dlq_app

app = typer.Typer(no_args_is_help=True, add_completion=False, help=__doc__)
services_app = typer.Typer(no_args_is_help=True, help="Local Kafka broker and PostgreSQL.")
app.add_typer(services_app, name="services")
app.add_typer(dlq_app, name="dlq")


def _logging(level: str = "INFO") -> None:
    from agent_history.contract.settings import LogSettings
    from agent_history.server.logs import configure_logging

    configure_logging(LogSettings().log_format, level)


def _until_signal(main: Callable[[asyncio.Event], Coroutine[Any, Any, None]]) -> None:
    """Run ``main(stop)`` until it returns; SIGINT/SIGTERM set ``stop`` for a clean shutdown."""

    async def runner() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        await main(stop)

    asyncio.run(runner())


@services_app.command("up")
def services_up() -> None:
    """Start Kafka and PostgreSQL on 127.0.0.1 (installing what is missing); idempotent."""
    from agent_history import devservices as services
    from agent_history.devservices.settings import ServicesSettings

    typer.echo(services.up(ServicesSettings()).describe())


@services_app.command("down")
def services_down() -> None:
    """Stop the local Kafka and PostgreSQL, and what `demo --keep` left running."""
    from agent_history import devservices as services
    from agent_history.devservices.settings import ServicesSettings
    from agent_history.server.demo import stop_demo_processes

    settings = ServicesSettings()
    stop_demo_processes(settings)
    services.down(settings)
    typer.echo("services stopped")


@services_app.command("status")
def services_status() -> None:
    """Show what runs, and the settings to use."""
    from agent_history import devservices as services
    from agent_history.devservices.settings import ServicesSettings

    typer.echo(services.status(ServicesSettings()).describe())


@app.command()
def migrate() -> None:
    """Apply database migrations (Alembic) up to the newest revision."""
    from agent_history.read_model.db import DatabaseSettings
    from agent_history.read_model.migrate import migrate as run_migrations

    _logging()
    run_migrations(DatabaseSettings())
    typer.echo("database is at the newest revision")


@app.command()
def topics() -> None:
    """Create the event and dead-letter topics with explicit settings; idempotent."""
    from agent_history.contract.settings import KafkaSettings
    from agent_history.projector.topics import ensure_topics

    created = asyncio.run(ensure_topics(KafkaSettings()))
    typer.echo(f"created: {', '.join(created)}" if created else "topics already exist")


@app.command()
def projector(
    log_level: Annotated[str, typer.Option(help="Python logging level.")] = "INFO",
) -> None:
    """Consume the event topic and keep agent_executions up to date (runs until stopped)."""
    from agent_history.projector.allocator import map_big_blocks
    from agent_history.projector.settings import ProjectorSettings
    from agent_history.server.bootstrap import build_projector
    from agent_history.server.tracing import configure_tracing

    _logging(log_level)
    settings = ProjectorSettings()
    map_big_blocks()  # its memory bounded while it runs: projector/allocator.py
    configure_tracing("agent-history-projector")  # from OTEL_*; off unless they ask for it

    async def main(stop: asyncio.Event) -> None:
        async with build_projector(settings) as project:
            await project(stop)

    _until_signal(main)


@app.command()
def watchdog(
    log_level: Annotated[str, typer.Option(help="Python logging level.")] = "INFO",
) -> None:
    """Time out runs whose worker was lost, that ran past their deadline or were queued too
    long, with verdict events on the topic (one judges per database; runs until stopped)."""
    from agent_history.projector.settings import WatchdogSettings
    from agent_history.server.bootstrap import build_watchdog

    _logging(log_level)
    settings = WatchdogSettings()

    async def main(stop: asyncio.Event) -> None:
        async with build_watchdog(settings) as judge:
            await judge.run(stop)

    _until_signal(main)


_OLDER_THAN = typer.Option(
    "--older-than",
    help="Age such as 90d, 12h or 2w; default: AGENT_HISTORY_RETENTION_DAYS.",
)


def _retention(older_than: str | None, retention_days: float | None) -> float | None:
    """Days to keep, from the option or the setting (None: keep everything)."""
    if older_than is None:
        return retention_days
    from agent_history.projector.retention import parse_age

    try:
        return parse_age(older_than).total_seconds() / 86400
    except ValueError as e:
        raise typer.BadParameter(str(e), param_hint="--older-than") from None


@app.command()
def replay(
    older_than: Annotated[str | None, _OLDER_THAN] = None,
    metrics_port: Annotated[
        int, typer.Option(min=0, help="Serve progress metrics on this port; 0: off.")
    ] = 9183,
) -> None:
    """Rebuild the read model from the start of the topic and swap it in atomically."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeRemainingColumn

    from agent_history.projector.allocator import map_big_blocks
    from agent_history.projector.replay import ReplayError, ReplayResult
    from agent_history.projector.settings import ProjectorSettings
    from agent_history.server.bootstrap import build_replay
    from agent_history.server.progress import RateColumn

    _logging("WARNING")
    settings = ProjectorSettings()
    map_big_blocks()
    days = _retention(older_than, settings.retention_days)
    settings = settings.model_copy(update={"retention_days": days})
    columns = (BarColumn(), MofNCompleteColumn(), RateColumn(), TimeRemainingColumn())
    with Progress("replaying", *columns) as bar:
        task = bar.add_task("replay", total=None)

        def progress(done: int, total: int) -> None:
            bar.update(task, completed=done, total=total)

        async def main() -> ReplayResult:
            async with build_replay(settings, progress, metrics_port) as run_replay:
                return await run_replay()

        try:
            result: ReplayResult | ReplayError = asyncio.run(main())
        except ReplayError as error:  # before any swap: the live tables are as they were
            result = error
    if isinstance(result, ReplayError):  # once the progress bar is done with the terminal
        typer.echo(f"error: {result}", err=True)
        raise typer.Exit(1)
    typer.echo(
        f"replayed {result.events} events ({result.invalid} invalid) into "
        f"{result.executions} executions ({result.pruned} deleted by retention); swapped in, "
        f"holding the live projectors off for {result.held_off:.2f} s"
    )


@app.command()
def prune(older_than: Annotated[str | None, _OLDER_THAN] = None) -> None:
    """Delete executions that started before the cutoff, in short batches."""
    from datetime import UTC, datetime, timedelta

    from agent_history.projector.settings import ProjectorSettings
    from agent_history.server.bootstrap import build_pruner

    settings = ProjectorSettings()
    days = _retention(older_than, settings.retention_days)
    if days is None:
        raise typer.BadParameter(
            "give an age or set AGENT_HISTORY_RETENTION_DAYS", param_hint="--older-than"
        )
    cutoff = datetime.now(UTC) - timedelta(days=days)

    async def main() -> int:
        async with build_pruner(settings) as run_prune:
            return await run_prune(cutoff)

    deleted = asyncio.run(main())
    typer.echo(f"deleted {deleted} executions that started before {cutoff.isoformat()}")


@app.command()
def erase(
    user: Annotated[str, typer.Option(help="The user id (UUID) to erase.")],
) -> None:
    """Erase a user: delete their executions, name and counts, in short batches, and record
    it, so that neither the projector nor a replay brings them back; safe to repeat."""
    from agent_history.projector.erasure import Erasure
    from agent_history.projector.settings import ProjectorSettings
    from agent_history.server.bootstrap import build_eraser

    user_id = _uuid(user, "--user")
    erased: Erasure = asyncio.run(build_eraser(ProjectorSettings())(user_id))
    again = "" if erased.first else f" (already erased at {erased.erased_at.isoformat()})"
    typer.echo(
        f"erased user {user_id}{again}: deleted {erased.executions} executions, "
        f"{erased.names} name and {erased.status_counts} status counts; "
        f"{erased.executions_removed} executions removed and {erased.dropped_events} later "
        "events dropped in all"
    )
    typer.echo(
        "the user's raw events stay in the Kafka topic until its retention removes them "
        "(see the README, Erasing a user)"
    )


_FILTER_HELP = (
    "Any other filter of the list, as NAME=VALUE (its query parameter), e.g. "
    "started_before=2025-02-01T00:00:00Z or tag=search; repeatable."
)


@app.command()
def export(
    agent: Annotated[str | None, typer.Option(help="An agent's list (UUID).")] = None,
    user: Annotated[str | None, typer.Option(help="A user's list (UUID).")] = None,
    form: Annotated[str, typer.Option("--format", help="jsonl or csv.")] = "jsonl",
    status: Annotated[list[str] | None, typer.Option(help="Only this status; repeatable.")] = None,
    started_after: Annotated[str | None, typer.Option(help="RFC 3339 time.")] = None,
    include: Annotated[str | None, typer.Option(help="input_data,output_data")] = None,
    filters: Annotated[list[str] | None, typer.Option("--filter", help=_FILTER_HELP)] = None,
    output: Annotated[Path | None, typer.Option("-o", "--output", help="Else stdout.")] = None,
) -> None:
    """Export every execution of an agent's or a user's list (the list's filters) as JSON
    Lines or CSV, exactly as GET .../executions/export does, straight from the database."""
    from pydantic import ValidationError

    from agent_history.api.settings import ApiSettings
    from agent_history.server.export import export_query, export_to

    if (agent is None) == (user is None):
        raise typer.BadParameter("give exactly one of --agent and --user")
    agent_id = None if agent is None else _uuid(agent, "--agent")
    user_id = None if user is None else _uuid(user, "--user")
    query: dict[str, Any] = {"format": form, "status": status or None}
    query.update(started_after=started_after, include=include)
    for given in filters or ():
        name, sep, value = given.partition("=")
        if not sep:
            raise typer.BadParameter(f"{given!r} is not NAME=VALUE", param_hint="--filter")
        query.setdefault(name, None)
        query[name] = value if query[name] is None else [*_listed(query[name]), value]
    try:
        params = export_query(agent_id, user_id, {k: v for k, v in query.items() if v is not None})
    except ValidationError as error:
        reasons = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in error.errors())
        raise typer.BadParameter(reasons) from None
    settings = ApiSettings()
    if output is None:
        asyncio.run(export_to(settings, agent_id, user_id, params, sys.stdout.buffer))
        return
    with output.open("wb") as out:
        asyncio.run(export_to(settings, agent_id, user_id, params, out))


def _listed(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def _uuid(value: str, option: str) -> UUID:
    try:
        return UUID(value)
    except ValueError:
        raise typer.BadParameter("must be a UUID", param_hint=option) from None


@app.command()
def api(
    host: Annotated[str | None, typer.Option(help="Bind address.")] = None,
    port: Annotated[int | None, typer.Option(help="TCP port.")] = None,
    workers: Annotated[int | None, typer.Option(min=1, help="Processes sharing the port.")] = None,
) -> None:
    """Serve the history API (read-only, but for the erase endpoint)."""
    from agent_history.api.app import serve
    from agent_history.api.settings import ApiSettings
    from agent_history.server import bootstrap

    given = {"host": host, "port": port, "workers": workers}
    overrides = {k: v for k, v in given.items() if v is not None}
    factory = f"{bootstrap.__name__}:{bootstrap.api_from_environment.__name__}"
    serve(ApiSettings().model_copy(update=overrides), factory)


@app.command()
def token(
    user: Annotated[str, typer.Option(help="The user id (UUID) the token speaks for.")],
    all_users: Annotated[
        bool, typer.Option("--all", help="Add the scope that reads every user's executions.")
    ] = False,
    may_erase: Annotated[
        bool, typer.Option("--erase", help="Add the scope that erases a user (executions:erase).")
    ] = False,
    ttl_minutes: Annotated[
        int | None,
        typer.Option(min=1, help="Minutes until it expires: 60, or 480 for a login link's."),
    ] = None,
    login_link: Annotated[
        bool,
        typer.Option(
            "--login-url",
            help="Print a one-time sign-in link for the page instead (usable once, within 5 "
            "minutes) that opens a session of --ttl-minutes.",
        ),
    ] = False,
    base_url: Annotated[
        str | None, typer.Option(help="The API's address in links; default http://HOST:PORT.")
    ] = None,
) -> None:
    """Print a bearer token for the history API, signed with AGENT_HISTORY_JWT_SECRET, or a
    one-time login link for the page."""
    from datetime import timedelta

    from agent_history.api.auth import mint_token
    from agent_history.api.login import SESSION_TTL, login_url, mint_login_code
    from agent_history.api.settings import ApiSettings

    user_id = _uuid(user, "--user")
    settings = ApiSettings()
    try:
        if login_link:
            ttl = SESSION_TTL if ttl_minutes is None else timedelta(minutes=ttl_minutes)
            code = mint_login_code(
                settings, user_id, all_scope=all_users, erase_scope=may_erase, session=ttl
            )
            typer.echo(login_url(base_url or f"http://{settings.host}:{settings.port}", code))
            return
        minted = mint_token(
            settings,
            user_id,
            all_scope=all_users,
            erase_scope=may_erase,
            ttl=timedelta(minutes=ttl_minutes or 60),
        )
    except ValueError as error:  # RS256 is configured: the private key is not ours to hold
        typer.echo(f"error: {error}", err=True)
        raise typer.Exit(1) from None
    typer.echo(minted)


@app.command()
def demo(
    keep: Annotated[
        bool, typer.Option(help="Leave services, projector, watchdog and API running.")
    ] = False,
) -> None:
    """Run the whole pipeline on sample agent runs and print one agent's history."""
    from agent_history.server.demo import run_demo

    _logging("WARNING")
    raise typer.Exit(asyncio.run(run_demo(keep=keep)))


def main() -> None:
    app()
