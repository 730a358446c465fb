"""The `agent-history` command. Each command builds its settings and imports its service lazily,
so a producer-only install still answers `--help`."""

from __future__ import annotations

import asyncio
import logging
import signal
from collections.abc import Callable, Coroutine
from typing import Annotated, Any

import typer

app = typer.Typer(no_args_is_help=True, add_completion=False, help=__doc__)
services_app = typer.Typer(no_args_is_help=True, help="Local Kafka broker and PostgreSQL.")
app.add_typer(services_app, name="services")


def _logging(level: str = "INFO") -> None:
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")


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
    from agent_history import services
    from agent_history.settings import ServicesSettings

    typer.echo(services.up(ServicesSettings()).describe())


@services_app.command("down")
def services_down() -> None:
    """Stop the local Kafka and PostgreSQL, and what `demo --keep` left running."""
    from agent_history import services
    from agent_history.demo import stop_demo_processes
    from agent_history.settings import ServicesSettings

    settings = ServicesSettings()
    stop_demo_processes(settings)
    services.down(settings)
    typer.echo("services stopped")


@services_app.command("status")
def services_status() -> None:
    """Show what runs, and the settings to use."""
    from agent_history import services
    from agent_history.settings import ServicesSettings

    typer.echo(services.status(ServicesSettings()).describe())


@app.command()
def migrate() -> None:
    """Apply database migrations (Alembic) up to the newest revision."""
    from agent_history.migrate import migrate as run_migrations
    from agent_history.settings import DatabaseSettings

    _logging()
    run_migrations(DatabaseSettings())
    typer.echo("database is at the newest revision")


@app.command()
def topics() -> None:
    """Create the event and dead-letter topics with explicit settings; idempotent."""
    from agent_history.settings import KafkaSettings
    from agent_history.topics import ensure_topics

    created = asyncio.run(ensure_topics(KafkaSettings()))
    typer.echo(f"created: {', '.join(created)}" if created else "topics already exist")


@app.command()
def projector(
    log_level: Annotated[str, typer.Option(help="Python logging level.")] = "INFO",
) -> None:
    """Consume the event topic and keep agent_executions up to date (runs until stopped)."""
    from agent_history.settings import ProjectorSettings
    from projector.app import run_projector

    _logging(log_level)
    settings = ProjectorSettings()
    _until_signal(lambda stop: run_projector(settings, stop))


@app.command()
def api(
    host: Annotated[str | None, typer.Option(help="Bind address.")] = None,
    port: Annotated[int | None, typer.Option(help="TCP port.")] = None,
) -> None:
    """Serve the read-only history API."""
    from agent_history.settings import ApiSettings
    from api.app import serve

    overrides = {k: v for k, v in {"host": host, "port": port}.items() if v is not None}
    serve(ApiSettings().model_copy(update=overrides))


@app.command()
def token(
    user: Annotated[str, typer.Option(help="The user id (UUID) the token speaks for.")],
    all_users: Annotated[
        bool, typer.Option("--all", help="Add the scope that reads every user's executions.")
    ] = False,
    ttl_minutes: Annotated[int, typer.Option(min=1, help="Minutes until it expires.")] = 60,
) -> None:
    """Print a bearer token for the history API, signed with AGENT_HISTORY_JWT_SECRET."""
    from datetime import timedelta
    from uuid import UUID

    from agent_history.settings import ApiSettings
    from api.auth import mint_token

    try:
        user_id = UUID(user)
    except ValueError:
        raise typer.BadParameter("must be a UUID", param_hint="--user") from None
    try:
        minted = mint_token(
            ApiSettings(), user_id, all_scope=all_users, ttl=timedelta(minutes=ttl_minutes)
        )
    except ValueError as error:  # RS256 is configured: the private key is not ours to hold
        typer.echo(f"error: {error}", err=True)
        raise typer.Exit(1) from None
    typer.echo(minted)


@app.command()
def demo(
    keep: Annotated[bool, typer.Option(help="Leave services, projector and API running.")] = False,
) -> None:
    """Run the whole pipeline on sample agent runs and print one agent's history."""
    from agent_history.demo import run_demo

    _logging("WARNING")
    raise typer.Exit(asyncio.run(run_demo(keep=keep)))


def main() -> None:
    app()
