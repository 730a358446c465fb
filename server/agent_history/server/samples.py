"""The demo's sample runs, recorded through track_execution as an agent worker would: several
agents and users, models, tags, metadata and token usage, runs that fail, one cancelled, one
still running, a sub-agent tree, and one whose worker dies after starting it."""

from __future__ import annotations

import asyncio
import contextlib
import random
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal

from agent_history.contract.events import RunRequestData
from agent_history.producer import Publisher, Run, track_execution

AGENTS = {"Research Assistant": 9, "Code Reviewer": 7, "Support Bot": 4}
USERS = ["ada", "grace", "linus"]
# Model, price per 1,000 input and output tokens (USD).
MODELS = {
    "gpt-4o": ("0.0025", "0.01"),
    "claude-sonnet-4": ("0.003", "0.015"),
    "llama-3.1-8b": ("0.0001", "0.0002"),
}
TAGS = ["prod", "eu", "batch", "priority"]
# The tree: a Research Assistant run that calls sub-agents, one of which calls another.
TREE = {"Web Search": 2, "Summariser": 1, "Fact Checker": 1}


class ToolError(RuntimeError):
    pass


@dataclass(frozen=True)
class Tracked:
    run: track_execution
    model: str


@dataclass(frozen=True)
class Samples:
    agent_id: uuid.UUID  # the Research Assistant's
    runs: int  # of the Research Assistant, the tree's root and the dead worker's run included
    published: int  # runs of every agent
    tree_root: uuid.UUID
    tree_size: int
    still_running: asyncio.Task[None]


async def record_samples(publisher: Publisher, rng: random.Random, done: asyncio.Event) -> Samples:
    """About twenty-five runs: most complete, some fail, one is cancelled, one is still running
    (heartbeating until ``done`` is set), one has sub-runs, and one's worker dies after
    starting it."""
    # Ids of this demo run's own, so a second demo shows its own history, not both.
    agents = {name: uuid.uuid4() for name in [*AGENTS, *TREE]}
    users = {name: uuid.uuid4() for name in USERS}

    def tracked(agent: str, user: str, task: str) -> Tracked:
        model = rng.choice(list(MODELS))
        run = track_execution(
            agents[agent],
            users[user],
            {"task": task},
            publisher=publisher,
            agent_name=agent,
            user_name=user,
            model=model,
            tags=sorted(rng.sample(TAGS, rng.randint(0, 2))),
            metadata={"region": rng.choice(["eu-west-1", "us-east-1"]), "attempt": 1},
        )
        return Tracked(run, model)

    jobs = []
    for agent, count in AGENTS.items():
        for n in range(count):
            ending = "fail" if n % 4 == 3 else "complete"
            if agent == "Research Assistant" and n == 5:
                ending = "cancel"
            run = tracked(agent, rng.choice(USERS), f"{agent.lower()} task #{n + 1}")
            jobs.append(_one_run(run, ending, rng, rng.uniform(0.0, 1.5)))
    root = tracked("Research Assistant", "ada", "compare three vector databases")
    jobs.append(_tree(root, tracked, rng))
    await asyncio.gather(*jobs)
    # A long run, still going while the demo reads the history: its publisher heartbeats.
    long_run = tracked("Research Assistant", "grace", "summarise the quarterly report")
    still_running = asyncio.create_task(_run_until(long_run.run, done))
    # A worker that dies right after starting a run: Started, then silence. The watchdog
    # times it out once no event came for lost_after.
    await publisher.publish_started(
        RunRequestData(
            execution_id=uuid.uuid4(),
            agent_id=agents["Research Assistant"],
            user_id=users["ada"],
            input_data={"task": "translate the release notes"},
            agent_name="Research Assistant",
            user_name="ada",
            model="gpt-4o",
        )
    )
    return Samples(
        agent_id=agents["Research Assistant"],
        runs=AGENTS["Research Assistant"] + 3,
        published=sum(AGENTS.values()) + sum(TREE.values()) + 3,  # + root, long, dead
        tree_root=root.run.run.execution_id,
        tree_size=1 + sum(TREE.values()),
        still_running=still_running,
    )


def _spend(run: Run, model: str, rng: random.Random) -> None:
    """One model call's tokens and what they cost at the model's price."""
    tokens_in, tokens_out = rng.randint(300, 4000), rng.randint(50, 900)
    price_in, price_out = MODELS[model]
    cost = (Decimal(price_in) * tokens_in + Decimal(price_out) * tokens_out) / 1000
    run.add_usage(input_tokens=tokens_in, output_tokens=tokens_out, cost=cost)


async def _run_until(run: track_execution, done: asyncio.Event) -> None:
    async with run as r:
        await done.wait()
        r.output = {"summary": "done"}


async def _one_run(tracked: Tracked, ending: str, rng: random.Random, delay: float) -> None:
    await asyncio.sleep(delay)  # runs start one after another, as a worker pool would
    seconds = rng.uniform(0.05, 0.6)

    async def body() -> None:
        async with tracked.run as r:
            await asyncio.sleep(seconds)
            _spend(r, tracked.model, rng)
            if ending == "fail":
                raise ToolError("web_search timed out after 30s")
            if ending == "cancel":
                raise asyncio.CancelledError("stopped by the user")
            r.output = {"summary": "done"}

    # Recorded as Failed / Cancelled by track_execution; the demo carries on.
    with contextlib.suppress(ToolError, asyncio.CancelledError):
        await body()


async def _tree(
    root: Tracked, tracked: Callable[[str, str, str], Tracked], rng: random.Random
) -> None:
    """A run that calls two searches at once, then a summariser that calls a fact checker:
    each sub-run is entered inside its caller's body, so track_execution links it to its
    parent."""

    async def search(n: int) -> str:
        async with tracked("Web Search", "ada", f"search engine #{n + 1}").run as r:
            await asyncio.sleep(rng.uniform(0.1, 0.3))
            r.output = {"hits": 10}
        return "hits"

    async with root.run as r:
        _spend(r, root.model, rng)  # planning
        await asyncio.gather(*(search(n) for n in range(TREE["Web Search"])))
        summariser = tracked("Summariser", "ada", "summarise the hits")
        async with summariser.run as s:
            _spend(s, summariser.model, rng)
            checker = tracked("Fact Checker", "ada", "check the summary's claims")
            async with checker.run as c:
                await asyncio.sleep(0.1)
                _spend(c, checker.model, rng)
                c.output = {"claims": 3, "supported": 3}
            s.output = {"summary": "pgvector for now"}
        r.output = {"answer": "pgvector, then a dedicated store past 50M vectors"}
