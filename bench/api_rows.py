"""The API benchmark's rows: executions as PostgreSQL COPY text, made fast and deterministically.

Rows come in execution_start order over a year, as the projector would have written them
(so the heap is in time order), one agent holding an exact share of them spread evenly, users
and the other agents drawn uniformly. 92 % completed, 6 % failed, 2 % cancelled; the newest
0.1 % mostly still running or queued. Durations are log-normal (median ~3 s); payloads small.
Each run names one of three models (9 : 5 : 2); an ended one used 100-4,195 input and 10-2,057
output tokens and cost 3 and 15 USD per million of them.
"""

from __future__ import annotations

import bisect
import functools
import itertools
import json
import random
import time
from dataclasses import dataclass

DAY_US = 86_400_000_000
SPAN_DAYS = 365
COLUMNS = [
    *("id", "agent_id", "user_id", "status", "execution_start", "execution_end"),
    *("input_data", "output_data", "error_message"),
    *("input_rank", "input_time", "input_event_id", "terminal_event_id"),
    *("model", "input_tokens", "output_tokens", "cost", "cost_currency"),
]
_RECENT = 0.001  # the newest rows: partly still running or queued, as in production
_TERMINAL = (("completed", 92), ("failed", 6), ("cancelled", 2))
_LIVE = (("running", 60), ("pending", 10), *_TERMINAL[:1])
_ERRORS = ("ValueError: quota exceeded", "TimeoutError: tool call took too long")
_MODELS = ("gpt-large",) * 9 + ("gpt-small",) * 5 + ("claude-x",) * 2


@dataclass(frozen=True)
class Shape:
    executions: int
    big: int  # executions of the one big agent
    agents: int
    users: int
    seed: int = 20251124
    # Runs carry a model, and ended ones tokens and a cost (in USD); older kept data did not.
    usage: bool = True


def _uuid_hex(rng: random.Random) -> str:
    """A random (version 4) UUID as 32 hex digits, which PostgreSQL's uuid input accepts."""
    bits = rng.getrandbits(128) & ~(0xF << 76) & ~(0x3 << 62)
    return f"{bits | (4 << 76) | (0x2 << 62):032x}"


def ids(seed: int, kind: str, n: int) -> list[str]:
    rng = random.Random(f"{seed}-{kind}")
    return [_uuid_hex(rng) for _ in range(n)]


@functools.cache
def _tables(shape: Shape, first_day: int) -> _Tables:
    """What every chunk of a worker process draws from, made once per process."""
    rng = random.Random(f"{shape.seed}-tables")

    def weighted(weights: tuple[tuple[str, int], ...]) -> list[str]:
        total = sum(w for _, w in weights)
        bounds = list(itertools.accumulate(w / total for _, w in weights))
        return [weights[bisect.bisect(bounds, (k + 0.5) / 1024)][0] for k in range(1024)]

    return _Tables(
        agents=ids(shape.seed, "agent", shape.agents),
        users=ids(shape.seed, "user", shape.users),
        days=[
            time.strftime("%Y-%m-%d ", time.gmtime((first_day + d) * 86_400))
            for d in range(SPAN_DAYS + 2)
        ],
        clock=[f"{s // 3600:02d}:{s // 60 % 60:02d}:{s % 60:02d}" for s in range(86_400)],
        durations=[int(rng.lognormvariate(8.0, 1.2)) * 1000 for _ in range(4096)],  # median ~3 s
        prompts=[
            json.dumps({"prompt": f"Summarise report {i} and list its risks", "temperature": 0.2})
            for i in range(64)
        ],
        answers=[
            json.dumps(
                {"answer": f"Three risks in report {i}: scope, staffing, dates", "tokens": i}
            )
            for i in range(64)
        ],
        settled=weighted(_TERMINAL),
        live=weighted(_LIVE),
    )


@dataclass(frozen=True)
class _Tables:
    agents: list[str]
    users: list[str]
    days: list[str]  # "YYYY-MM-DD " from first_day on
    clock: list[str]  # "HH:MM:SS" by second of the day
    durations: list[int]  # microseconds
    prompts: list[str]
    answers: list[str]
    settled: list[str]  # 1024 statuses in _TERMINAL's proportions
    live: list[str]  # the same for the newest rows


def copy_text(shape: Shape, first_us: int, start: int, stop: int) -> bytes:
    """Rows start..stop-1 (of shape.executions, in time order) as COPY text; deterministic."""
    rng = random.Random(f"{shape.seed}-{start}")
    bits = rng.getrandbits
    first_day = first_us // DAY_US
    t = _tables(shape, first_day)
    big, others = t.agents[0], t.agents[1:]

    def stamp(us: int) -> str:
        day, rest = divmod(us, DAY_US)
        second, micros = divmod(rest, 1_000_000)
        return f"{t.days[day - first_day]}{t.clock[second]}.{micros:06d}+00"

    # Exactly shape.big big-agent rows overall, spread evenly: this chunk's share of them.
    share = shape.big * stop // shape.executions - shape.big * start // shape.executions
    bigs = set(rng.sample(range(start, stop), share))
    step = SPAN_DAYS * DAY_US // shape.executions
    recent = shape.executions - int(shape.executions * _RECENT)
    out = []
    for i in range(start, stop):
        begun = first_us + i * step + bits(32) % step
        agent = big if i in bigs else others[bits(32) % len(others)]
        user = t.users[bits(32) % len(t.users)]
        status = (t.live if i >= recent else t.settled)[bits(10)]
        at = stamp(begun)
        end = output = error = terminal = "\\N"
        if status not in ("running", "pending"):
            end, terminal = stamp(begun + t.durations[bits(12)]), _uuid_hex(rng)
        if status == "completed":
            output = t.answers[bits(6)]
        elif status == "failed":
            error = _ERRORS[bits(1)]
        elif status == "cancelled":
            error = "cancelled by the user"
        rank = 1 if status == "pending" else 0
        usage = "\\N\t\\N\t\\N\t\\N"
        if end != "\\N":
            tokens_in, tokens_out = 100 + bits(12), 10 + bits(11)
            usage = f"{tokens_in}\t{tokens_out}\t0.{tokens_in * 3 + tokens_out * 15:06d}\tUSD"
        out.append(
            f"{_uuid_hex(rng)}\t{agent}\t{user}\t{status}\t{at}\t{end}\t{t.prompts[bits(6)]}\t"
            f"{output}\t{error}\t{rank}\t{at}\t{_uuid_hex(rng)}\t{terminal}\t"
            f"{_MODELS[bits(4)]}\t{usage}\n"
        )
    return "".join(out).encode()
