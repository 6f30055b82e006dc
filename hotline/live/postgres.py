"""Cross-process live events on PostgreSQL: LISTEN on the channel every process NOTIFYs.

Each process sends its committed events with NOTIFY (hotline/events.py) and
listens here on one dedicated connection; events from other processes go to
this process's consoles (`ctx.live`) marked "remote": true, its own are skipped
(they arrived on the local bus already). When the connection drops, consoles get {"type": "resync"}
after it is back, since NOTIFYs sent in between are gone.
"""
from __future__ import annotations

import asyncio
import json
import logging
from typing import Any

import asyncpg
from sqlalchemy.engine import make_url

from hotline.events import NOTIFY_CHANNEL, EventBus

log = logging.getLogger(__name__)


def asyncpg_dsn(sqlalchemy_url: str) -> str:
    url = make_url(sqlalchemy_url)
    return url.set(drivername="postgresql").render_as_string(hide_password=False)


class PostgresListener:
    def __init__(self, database_url: str, origin: str, live: EventBus) -> None:
        self.dsn = asyncpg_dsn(database_url)
        self.origin = origin
        self.live = live
        self.connected = asyncio.Event()

    def _on_notify(self, _conn: Any, _pid: int, _channel: str, payload: str) -> None:
        try:
            data = json.loads(payload)
        except ValueError:
            log.warning("ignoring a NOTIFY that is not JSON on %s", NOTIFY_CHANNEL)
            return
        if data.get("origin") == self.origin or not isinstance(data.get("event"), dict):
            return
        self.live.publish({**data["event"], "remote": True})

    async def run(self) -> None:
        """Listen until cancelled, reconnecting with back-off."""
        delay, first = 0.5, True
        while True:
            lost = asyncio.Event()
            try:
                conn = await asyncpg.connect(self.dsn, timeout=10)
            except (OSError, asyncpg.PostgresError, TimeoutError) as exc:
                log.warning("live events: cannot reach PostgreSQL (%s); retrying in %.1f s", exc, delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 10)
                continue
            try:
                conn.add_termination_listener(lambda _c, lost=lost: lost.set())
                await conn.add_listener(NOTIFY_CHANNEL, self._on_notify)
                delay = 0.5
                self.connected.set()
                if not first:
                    self.live.publish({"type": "resync"})
                first = False
                await self._watch(conn, lost)
            except (OSError, asyncpg.PostgresError) as exc:
                log.warning("live events: connection lost (%s)", exc)
            finally:
                self.connected.clear()
                if not conn.is_closed():
                    conn.terminate()
            await asyncio.sleep(delay)

    @staticmethod
    async def _watch(conn: asyncpg.Connection, lost: asyncio.Event) -> None:
        """Wait for the connection to end; a cheap query every 15 s notices a silent drop."""
        while not lost.is_set():
            try:
                await asyncio.wait_for(lost.wait(), 15)
            except TimeoutError:
                await conn.fetchval("SELECT 1", timeout=5)
