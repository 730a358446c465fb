"""`agent-history dlq`: list, show and redrive the dead-letter topic's records.

The commands import the projector lazily, as cli.py does, so that `--help` needs nothing more.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Annotated, TypeVar

import typer

if TYPE_CHECKING:
    from agent_history.projector.dlq import DeadLetter, DeadLetterQueue, Position, Redrive

T = TypeVar("T")

dlq_app = typer.Typer(
    no_args_is_help=True,
    help="The dead-letter topic: records the projector set aside, and why. A record is named "
    "PARTITION:OFFSET in the dead-letter topic (or OFFSET when it has one partition).",
)

_SINCE = typer.Option(
    help="Only those written since: an ISO time (UTC if no offset) or an age such as 2h or 7d."
)
_REASON = typer.Option(help="Only those whose reason contains this text (any case).")


def parse_since(value: str | None) -> datetime | None:
    if value is None:
        return None
    from agent_history.projector.retention import parse_age

    try:
        return datetime.now(UTC) - parse_age(value)
    except ValueError:
        pass
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise typer.BadParameter("an ISO time or an age like 2h", param_hint="--since") from None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _positions(values: list[str]) -> list[Position]:
    from agent_history.projector.dlq import parse_position

    try:
        return [parse_position(v) for v in values]
    except ValueError as e:
        raise typer.BadParameter(str(e), param_hint="OFFSETS") from None


def _run(work: Callable[[DeadLetterQueue], Awaitable[T]]) -> T:
    from agent_history.projector.settings import ProjectorSettings
    from agent_history.server.bootstrap import build_dead_letter_queue

    async def main() -> T:
        async with build_dead_letter_queue(ProjectorSettings()) as queue:
            return await work(queue)

    try:
        return asyncio.run(main())
    except LookupError as e:
        typer.echo(f"error: {e}", err=True)
        raise typer.Exit(1) from None


def line(letter: DeadLetter) -> str:
    """One dead letter on one line: where, when, why, from where, and the start of it."""
    when = letter.timestamp.strftime("%Y-%m-%dT%H:%M:%SZ")
    again = f" (again, redriven from {letter.redriven_from})" if letter.redriven_from else ""
    return (
        f"{letter.position:>9}  {when}  {letter.origin}  {letter.reason}{again}"
        f"  | {letter.preview()}"
    )


def describe(letter: DeadLetter) -> str:
    """The whole record: its place, time, key, every header and the value."""

    def text(raw: bytes | None) -> str:
        if raw is None:
            return "(null)"
        try:
            return raw.decode()
        except UnicodeDecodeError:
            return repr(raw)

    lines = [
        f"dead letter {letter.position}, written {letter.timestamp.isoformat()}",
        f"reason: {letter.reason}",
        *([f"redriven from dead letter {letter.redriven_from}"] if letter.redriven_from else []),
        f"from:   {letter.origin}",
        f"key:    {text(letter.key)}",
        "headers:",
        *(f"  {name}: {text(value)}" for name, value in letter.headers),
        "value:",
    ]
    try:
        value = json.dumps(json.loads(letter.value or b""), indent=2, ensure_ascii=False)
    except ValueError:  # not JSON (or not UTF-8): as it is
        value = text(letter.value)
    return "\n".join([*lines, value])


@dlq_app.command("list")
def list_(
    since: Annotated[str | None, _SINCE] = None,
    reason: Annotated[str | None, _REASON] = None,
    limit: Annotated[int, typer.Option(min=1, help="At most this many, the newest.")] = 50,
) -> None:
    """The dead letters, oldest first: place, time, origin, reason and the start of the value."""
    from agent_history.projector.dlq import matching

    async def work(queue: DeadLetterQueue) -> list[DeadLetter]:
        return matching(await queue.read(parse_since(since)), reason)

    found = _run(work)
    for letter in found[-limit:]:
        typer.echo(line(letter))
    more = f" (the newest {limit} shown)" if len(found) > limit else ""
    typer.echo(f"{len(found)} dead letters{more}", err=True)


@dlq_app.command()
def show(offset: Annotated[str, typer.Argument(help="PARTITION:OFFSET, or OFFSET.")]) -> None:
    """One dead letter whole: key, headers (the original ones and the projector's) and value."""
    from agent_history.projector.dlq import matching

    (position,) = _positions([offset])

    async def work(queue: DeadLetterQueue) -> list[DeadLetter]:
        return matching(await queue.read(), positions=[position])

    found = _run(work)
    if not found:
        typer.echo(f"error: no dead letter at {offset}", err=True)
        raise typer.Exit(1)
    typer.echo(describe(found[0]))


@dlq_app.command()
def redrive(
    offsets: Annotated[list[str] | None, typer.Argument(help="PARTITION:OFFSET of each.")] = None,
    reason: Annotated[str | None, _REASON] = None,
    since: Annotated[str | None, _SINCE] = None,
) -> None:
    """Put dead letters back on the event topic, as they came, each once (e.g. after an
    upgrade of the projector); a second redrive skips what the first sent."""
    from agent_history.projector.dlq import to_redrive

    if not offsets and reason is None and since is None:
        raise typer.BadParameter("name the records (OFFSETS), or select by --reason or --since")
    positions = _positions(offsets or [])

    async def work(queue: DeadLetterQueue) -> tuple[Redrive, list[DeadLetter]]:
        chosen, again = to_redrive(await queue.read(parse_since(since)), reason, positions)
        missing = set(positions) - {(d.partition, d.offset) for d in chosen}
        if missing:
            where = ", ".join(f"{p}:{o}" for p, o in sorted(missing))
            raise LookupError(f"no dead letter at {where} (that matches); nothing redriven")
        return await queue.redrive(chosen), again

    done, again = _run(work)
    for letter in done.sent:
        typer.echo(f"redriven {letter.position}  {letter.reason}")
    left_out = (
        f", {len(again)} left out (dead-lettered again after a redrive: name them to redrive "
        "them again)"
        if again
        else ""
    )
    typer.echo(
        f"{len(done.sent)} redriven, {len(done.skipped)} skipped (redriven before){left_out}"
    )
