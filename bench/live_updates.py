"""Live updates: from publishing a terminal event to the run's new status at a stream's client.

`python -m bench.live_updates [--rates 100 1000] [--streams 50] [--seconds 20] [--browser 1]`

The projector and the API (two worker processes) run as `agent-history` processes on this run's
own database and topic. ``--streams`` clients each follow one agent's list through
`GET /agents/{id}/executions/stream` (httpx, parsing the event stream as EventSource does);
runs are spread over those agents. At each rate (events per second: every run is a Started
event, then its Completed 100 ms later) every Completed is timed from just before it is handed
to the Kafka producer until its stream delivers the run with status `completed`.

The measuring end is a ``Watcher``: this one reads the SSE stream itself. ``--browser N``
(default 1; 0 for none) adds N ``BrowserWatcher``s (bench/live_dom.py) beside them, each a
headless Chromium tab on one of those agents' history page (``/ui/agents/{id}``), which report
``(run id, time seen)`` in the same way when a row's status in the page's DOM turns terminal;
those completions are timed from the same send, on the wall clock (``time.time()`` against the
page's ``Date.now()``).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import time
import uuid
from collections.abc import Callable
from contextlib import AsyncExitStack
from dataclasses import dataclass, field

import asyncpg
import httpx
from aiokafka import AIOKafkaProducer

from agent_history.api.auth import mint_token
from agent_history.api.settings import ApiSettings
from agent_history.read_model.changes import CHANNEL, decode_announcement
from bench.environment import create_database, drop_database, from_environment, topics
from bench.freshness import _event as cloud_event
from bench.live import api_ready, cpu_seconds, service
from bench.live_dom import BrowserWatcher
from bench.workload import HEADERS

PREFIX = "/api/v1/agent-studio"
COMPLETE_AFTER = 0.1
_TICK = 0.005


@dataclass
class Watcher:
    """Follows one agent's stream; calls ``seen(run, when)`` for each completed run."""

    base: str
    agent: uuid.UUID
    token: str
    seen: Callable[[str, float], None]
    resets: int = 0
    opened: asyncio.Event = field(default_factory=asyncio.Event)

    async def run(self) -> None:
        headers = {"Authorization": f"Bearer {self.token}"}
        url = f"{self.base}{PREFIX}/agents/{self.agent}/executions/stream"
        async with (
            httpx.AsyncClient(timeout=None) as client,
            client.stream("GET", url, headers=headers) as response,
        ):
            response.raise_for_status()
            self.opened.set()
            event = None
            async for line in response.aiter_lines():
                if line.startswith("event: "):
                    event = line[7:]
                elif line.startswith("data: ") and event == "execution":
                    item = json.loads(line[6:])
                    if item["status"] == "completed":
                        self.seen(item["id"], time.perf_counter())
                elif line.startswith("data: ") and event == "reset":
                    self.resets += 1
                elif line == "":
                    event = None


@dataclass
class Round:
    rate: float
    published: int = 0
    sent_at: dict[str, float] = field(default_factory=dict)
    latencies: list[float] = field(default_factory=list)
    # From the send to the projector's announcement reaching a listener of this process.
    announced: list[float] = field(default_factory=list)
    # The agents a browser tab follows; their completions' sends in time.time() seconds.
    page_agents: frozenset[str] = frozenset()
    page_sent_at: dict[str, float] = field(default_factory=dict)
    page_latencies: list[float] = field(default_factory=list)

    def heard(self, payload: str) -> None:
        """An announcement: the projector committed these runs (time it for those sent)."""
        when = time.perf_counter()
        found = decode_announcement(payload).ids_for(None, None) or frozenset()
        for run in found:
            sent = self.sent_at.get(str(run))
            if sent is not None:
                self.announced.append((when - sent) * 1000)

    def seen(self, run: str, when: float) -> None:
        sent = self.sent_at.pop(run, None)
        if sent is not None:
            self.latencies.append((when - sent) * 1000)

    def seen_in_page(self, run: str, when: float) -> None:
        """A browser tab's row for ``run`` turned terminal at ``when`` (time.time() seconds)."""
        sent = self.page_sent_at.pop(run, None)
        if sent is not None:
            self.page_latencies.append((when - sent) * 1000)


async def _publish(
    producer: AIOKafkaProducer,
    topic: str,
    agents: list[uuid.UUID],
    user: str,
    rnd: Round,
    seconds: float,
) -> None:
    """Started and Completed events at ``rnd.rate`` in all, for ``seconds``."""
    start = time.perf_counter()
    due: list[tuple[float, str, str]] = []  # (when, run, agent) to complete
    runs = 0
    while (now := time.perf_counter()) < start + seconds or due:
        wanted = int((now - start) * rnd.rate / 2) if now < start + seconds else runs
        while runs < wanted:
            run, agent = str(uuid.uuid4()), str(agents[runs % len(agents)])
            ids = {"execution_id": run, "agent_id": agent, "user_id": user}
            value = cloud_event("ExecutionStarted", run, ids, {"input_data": {"n": runs}})
            await producer.send(topic, value, key=run.encode(), headers=HEADERS)
            due.append((now + COMPLETE_AFTER, run, agent))
            runs += 1
        while due and due[0][0] <= now:
            _, run, agent = due.pop(0)
            ids = {"execution_id": run, "agent_id": agent, "user_id": user}
            value = cloud_event("ExecutionCompleted", run, ids, {"output_data": "ok"})
            rnd.sent_at[run] = time.perf_counter()
            if agent in rnd.page_agents:
                rnd.page_sent_at[run] = time.time()
            await producer.send(topic, value, key=run.encode(), headers=HEADERS)
            rnd.published += 2
        await asyncio.sleep(_TICK)


def _percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))]


async def main(rates: list[float], streams: int, seconds: float, port: int, browsers: int) -> None:
    bench = from_environment()
    settings = bench.projector_settings("live")
    api_settings = ApiSettings(database_url=bench.database_url, port=port, workers=2)
    await create_database(bench, bench.database_url)
    try:
        async with AsyncExitStack() as stack:
            await stack.enter_async_context(topics(bench, "live"))
            await stack.enter_async_context(service(["projector"], settings))
            api = await stack.enter_async_context(service(["api"], api_settings))
            base = f"http://127.0.0.1:{port}"
            await api_ready(base, api)
            token = mint_token(api_settings, uuid.uuid4(), all_scope=True)
            agents = [uuid.uuid4() for _ in range(streams)]
            followed = frozenset(str(a) for a in agents[:browsers])
            rounds = [Round(rate, page_agents=followed) for rate in rates]
            current: list[Round] = [Round(0)]
            watchers = [Watcher(base, a, token, lambda r, t: current[0].seen(r, t)) for a in agents]
            tabs = [
                BrowserWatcher(base, a, api_settings, lambda r, t: current[0].seen_in_page(r, t))
                for a in agents[:browsers]
            ]
            tasks = [asyncio.create_task(w.run()) for w in watchers]
            tasks += [asyncio.create_task(t.run()) for t in tabs]
            opened = [w.opened.wait() for w in watchers] + [t.opened.wait() for t in tabs]
            await asyncio.wait_for(asyncio.gather(*opened), 60)
            producer = AIOKafkaProducer(
                bootstrap_servers=bench.kafka, acks="all", linger_ms=5, enable_idempotence=True
            )
            await producer.start()
            stack.push_async_callback(producer.stop)
            user = str(uuid.uuid4())
            listener = await asyncpg.connect(bench.dsn())
            stack.push_async_callback(listener.close)
            await listener.add_listener(CHANNEL, lambda *a: current[0].heard(a[-1]))
            await _publish(producer, settings.topic, agents, user, Round(50), 3)  # warm-up
            await asyncio.sleep(2)
            for rnd in rounds:
                current[0] = rnd
                cpu = cpu_seconds(api.pid)
                began = time.perf_counter()
                await _publish(producer, settings.topic, agents, user, rnd, seconds)
                await producer.flush()
                for _ in range(200):  # up to 10 s for the last ones
                    if not rnd.sent_at and not rnd.page_sent_at:
                        break
                    await asyncio.sleep(0.05)
                used = cpu_seconds(api.pid) - cpu
                lat, heard = rnd.latencies, rnd.announced or [0.0]
                print(
                    f"rate {rnd.rate:,.0f} events/s ({rnd.published / seconds:,.0f} published), "
                    f"{streams} streams: {len(lat)} completions seen, {len(rnd.sent_at)} missed; "
                    f"p50 {statistics.median(lat):.0f} ms, p99 {_percentile(lat, 0.99):.0f} ms, "
                    f"max {max(lat):.0f} ms (committed and announced: p50 "
                    f"{statistics.median(heard):.0f} ms, p99 {_percentile(heard, 0.99):.0f} ms); "
                    f"API CPU {used / (time.perf_counter() - began):.2f} "
                    f"cores; resets {sum(w.resets for w in watchers)}",
                    flush=True,
                )
                if tabs:
                    page = rnd.page_latencies or [0.0]
                    print(
                        f"  in the page's DOM ({len(tabs)} tab(s), {len(followed)} of the "
                        f"agents): {len(rnd.page_latencies)} completions seen, "
                        f"{len(rnd.page_sent_at)} missed; p50 {statistics.median(page):.0f} ms, "
                        f"p99 {_percentile(page, 0.99):.0f} ms, max {max(page):.0f} ms; "
                        f"redraws {sum(t.resets for t in tabs)}",
                        flush=True,
                    )
            for task in tasks:
                task.cancel()
            for failed in await asyncio.gather(*tasks, return_exceptions=True):
                if isinstance(failed, Exception):
                    print(f"a watcher failed: {failed!r}", flush=True)
    finally:
        await drop_database(bench, bench.database_url)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rates", type=float, nargs="+", default=[100, 1000])
    parser.add_argument("--streams", type=int, default=50)
    parser.add_argument("--seconds", type=float, default=20)
    parser.add_argument("--port", type=int, default=18531)
    parser.add_argument("--browser", type=int, default=1, help="headless Chromium tabs (0: none)")
    args = parser.parse_args()
    asyncio.run(main(args.rates, args.streams, args.seconds, args.port, args.browser))
