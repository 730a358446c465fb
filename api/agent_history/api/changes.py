"""The projector's change announcements, heard once per API process and handed to its streams.

One connection per process LISTENs on read_model.changes.CHANNEL; each announcement is kept in
a bounded replay buffer and handed to the subscriptions it concerns. Nothing here reads the
table: the streams fetch the changed rows themselves, with their own list's filters.

Positions are the announcing transactions' ids, the same in every process, so a client can
resume on any worker: ``subscribe(after)`` hands over what followed ``after`` when the buffer
still holds it, else tells the subscription to reset. The buffer starts empty when the process
starts, and again after the connection was lost (announcements made meanwhile are gone).

The same announcements keep a version per agent and per user (bumped whenever one of their
runs changes) that conditional requests use as ETags: while the connection holds, an unchanged
version means an unchanged list.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
from collections import OrderedDict, deque
from dataclasses import dataclass, field
from uuid import UUID

import asyncpg
from sqlalchemy.engine import make_url

from agent_history.read_model.changes import CHANNEL, Announcement, decode_announcement

log = logging.getLogger(__name__)

MAX_KEPT = 10_000  # announcements in the replay buffer
MAX_KEPT_IDS = 200_000  # execution ids across them
MAX_VERSIONS = 100_000  # agents and users whose version is remembered, each
CHECK_SECONDS = 10.0  # how often the listening connection is checked


@dataclass(eq=False)
class Subscription:
    """What one stream has yet to handle: announcements for its agent and/or user, or a reset."""

    agent_id: UUID | None
    user_id: UUID | None
    pending: list[Announcement] = field(default_factory=list)
    reset: bool = False
    ready: asyncio.Event = field(default_factory=asyncio.Event)

    def concerns(self, announcement: Announcement) -> bool:
        return announcement.ids_for(self.agent_id, self.user_id) != frozenset()

    def take(self) -> tuple[list[Announcement], bool]:
        """The pending announcements and whether to reset; nothing pending afterwards."""
        taken, reset = self.pending, self.reset
        self.pending, self.reset = [], False
        self.ready.clear()
        return taken, reset


class _Versions:
    """A counter value per key, bounded: a forgotten key answers the floor, which is at least
    the value it had."""

    def __init__(self) -> None:
        self._kept: OrderedDict[UUID, int] = OrderedDict()
        self.floor = 0

    def bump(self, key: UUID, value: int) -> None:
        self._kept[key] = value
        self._kept.move_to_end(key)
        if len(self._kept) > MAX_VERSIONS:
            _, forgotten = self._kept.popitem(last=False)
            self.floor = max(self.floor, forgotten)

    def bump_all(self, value: int) -> None:
        self._kept.clear()
        self.floor = value

    def of(self, key: UUID) -> int:
        return self._kept.get(key, self.floor)


class ChangeFeed:
    """The process's listener; ``start`` returns at once, the connection comes (back) later."""

    def __init__(self, database_url: str) -> None:
        url = make_url(database_url).set(drivername="postgresql")
        self._dsn = url.render_as_string(hide_password=False)
        self._buffer: deque[Announcement] = deque()
        self._kept_ids = 0
        # Position -> arrival number; the epoch's own marker stands for "before the first".
        self._arrivals: dict[str, int] = {}
        self._arrived = 0
        self._subscriptions: set[Subscription] = set()
        self._agents, self._users = _Versions(), _Versions()
        self.epoch: str | None = None  # None while not listening
        self._task: asyncio.Task[None] | None = None
        self.connected = asyncio.Event()

    @property
    def position(self) -> str | None:
        """Where the process's announcements stand: the newest position, or the epoch's
        marker before the first; None while not listening."""
        if self.epoch is None:
            return None
        return self._buffer[-1].position if self._buffer else self._marker

    @property
    def _marker(self) -> str:
        return f"e.{self.epoch}"

    def start(self) -> None:
        self._task = asyncio.create_task(self._listen(), name="change-feed")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        for subscription in self._subscriptions:
            subscription.reset = True
            subscription.ready.set()

    def subscribe(
        self, agent_id: UUID | None, user_id: UUID | None, after: str | None = None
    ) -> Subscription:
        """A subscription for a list of this agent and/or user; with ``after``, holding what
        followed that position already, or a reset when the buffer no longer holds it."""
        subscription = Subscription(agent_id, user_id)
        self._subscriptions.add(subscription)
        if after is not None:
            arrival = self._arrivals.get(after)
            if arrival is None:
                subscription.reset = True
            else:
                first = self._arrived - len(self._buffer) + 1  # arrival number of buffer[0]
                missed = list(self._buffer)[arrival - first + 1 :]
                subscription.pending = [a for a in missed if subscription.concerns(a)]
            if subscription.reset or subscription.pending:
                subscription.ready.set()
        return subscription

    def unsubscribe(self, subscription: Subscription) -> None:
        self._subscriptions.discard(subscription)

    def version(self, agent_id: UUID | None, user_id: UUID | None) -> str | None:
        """A value that changes whenever a run of this agent (else this user) may have changed;
        None when the feed cannot vouch for it (not listening)."""
        if self.epoch is None:
            return None
        if agent_id is not None:
            return f"{self.epoch}.a{self._agents.of(agent_id)}"
        if user_id is not None:
            return f"{self.epoch}.u{self._users.of(user_id)}"
        return f"{self.epoch}.{self._arrived}"

    def receive(self, announcement: Announcement) -> None:
        """Keep one announcement and hand it to the subscriptions it concerns."""
        self._arrived += 1
        self._buffer.append(announcement)
        self._arrivals[announcement.position] = self._arrived
        self._kept_ids += announcement.size
        while len(self._buffer) > MAX_KEPT or self._kept_ids > MAX_KEPT_IDS:
            dropped = self._buffer.popleft()
            self._kept_ids -= dropped.size
            self._arrivals.pop(dropped.position, None)
            self._arrivals.pop(self._marker, None)
        agents, users, unnamed = announcement.touches()
        if announcement.changed is None:
            self._agents.bump_all(self._arrived)
        for agent_id in agents:
            self._agents.bump(agent_id, self._arrived)
        if unnamed:
            self._users.bump_all(self._arrived)
        for user_id in users:
            self._users.bump(user_id, self._arrived)
        for subscription in self._subscriptions:
            if subscription.concerns(announcement):
                subscription.pending.append(announcement)
                subscription.ready.set()

    def _notified(self, _conn: object, _pid: int, _channel: str, payload: str) -> None:
        try:
            announcement = decode_announcement(payload)
        except ValueError:
            log.exception("ignoring a malformed change announcement")
            return
        self.receive(announcement)

    def _lost(self) -> None:
        """Announcements may be missed from now on: forget everything, reset every stream."""
        self.epoch = None
        self.connected.clear()
        self._buffer.clear()
        self._arrivals.clear()
        self._kept_ids = 0
        for subscription in self._subscriptions:
            subscription.pending.clear()
            subscription.reset = True
            subscription.ready.set()

    async def _listen(self) -> None:
        delay = 0.2
        while True:
            conn = None
            try:
                conn = await asyncpg.connect(
                    self._dsn, server_settings={"application_name": "agent-history-api-listen"}
                )
                await conn.add_listener(CHANNEL, self._notified)
                self.epoch = secrets.token_hex(6)
                self._arrivals[self._marker] = self._arrived
                self._agents.bump_all(self._arrived)
                self._users.bump_all(self._arrived)
                self.connected.set()
                for subscription in self._subscriptions:  # subscribed while not listening
                    subscription.reset = True
                    subscription.ready.set()
                delay = 0.2
                while True:  # a dead connection would otherwise go unnoticed
                    await asyncio.sleep(CHECK_SECONDS)
                    await asyncio.wait_for(conn.execute("SELECT 1"), CHECK_SECONDS)
            except asyncio.CancelledError:
                raise
            except Exception as error:
                log.warning("change feed: %r; listening again in %.1fs", error, delay)
            finally:
                was_listening = self.epoch is not None
                self._lost()
                if conn is not None:
                    conn.terminate()
                if was_listening:
                    log.warning("change feed lost its connection; streams will reset")
            await asyncio.sleep(delay)
            delay = min(delay * 2, 5.0)
