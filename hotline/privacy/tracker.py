"""Rasa's trackers (the bot's memory of each conversation): purged by age and erased per conversation.

Where they are kept (hotline/rasa/processes.py): with one Rasa worker, in that server's memory (gone
when it restarts); with several, in Rasa's SQL tracker store, table `events` of the schema `rasa` in
the service's PostgreSQL database. The SQL store is purged and erased here with SQL; a tracker in a
running server's memory is emptied through Rasa's HTTP API (PUT …/tracker/events with no events).
The bot's sender id for a conversation is "<channel>-<conversation id>" (conversations/service.py).
"""
from __future__ import annotations

import datetime as dt
import logging
import time
from collections.abc import Iterable

import aiohttp
from sqlalchemy import bindparam, text

from hotline.context import AppContext
from hotline.rasa.processes import TRACKER_SCHEMA

log = logging.getLogger(__name__)

EVENTS = f'"{TRACKER_SCHEMA}".events'


def sender_id(channel: str, conversation_id: int) -> str:
    return f"{channel}-{conversation_id}"


async def _sql_store(ctx: AppContext) -> bool:
    """Whether Rasa's SQL tracker store is in this database (PostgreSQL with the `rasa` schema's table)."""
    if ctx.engine.dialect.name != "postgresql":
        return False
    async with ctx.readers() as session:
        return (await session.execute(text("SELECT to_regclass(:name) IS NOT NULL"),
                                      {"name": f"{TRACKER_SCHEMA}.events"})).scalar_one() is True


async def count_before(ctx: AppContext, until: dt.datetime) -> int:
    if not await _sql_store(ctx):
        return 0
    async with ctx.readers() as session:
        return int((await session.execute(text(f"SELECT count(*) FROM {EVENTS} WHERE timestamp < :t"),
                                          {"t": until.timestamp()})).scalar_one())


async def purge_before(ctx: AppContext, until: dt.datetime, batch: int) -> tuple[int, float]:
    """Delete tracker events older than `until`, `batch` at a time; (rows, longest batch in ms)."""
    if not await _sql_store(ctx):
        return 0, 0.0
    removed, longest = 0, 0.0
    stmt = text(f"DELETE FROM {EVENTS} WHERE id IN (SELECT id FROM {EVENTS} WHERE timestamp < :t "
                "ORDER BY id LIMIT :n)")
    while True:
        started = time.perf_counter()
        async with ctx.sessions.begin() as session:
            rows = int((await session.execute(stmt, {"t": until.timestamp(), "n": batch})).rowcount or 0)  # type: ignore[attr-defined]
        longest = max(longest, (time.perf_counter() - started) * 1000)
        removed += rows
        if rows < batch:
            return removed, longest


async def erase_senders(ctx: AppContext, senders: Iterable[str]) -> int:
    """Forget these conversations in the SQL store and in the running Rasa servers; rows deleted."""
    names = sorted(set(senders))
    if not names:
        return 0
    removed = 0
    if await _sql_store(ctx):
        stmt = text(f"DELETE FROM {EVENTS} WHERE sender_id IN :names").bindparams(
            bindparam("names", expanding=True))
        async with ctx.sessions.begin() as session:
            removed = int((await session.execute(stmt, {"names": names})).rowcount or 0)  # type: ignore[attr-defined]
    await _reset_in_servers(ctx, names)
    return removed


async def _reset_in_servers(ctx: AppContext, names: list[str]) -> None:
    """Replace each tracker with no events in every running Rasa server (in-memory trackers)."""
    bot = ctx.bot
    if bot is None:
        return
    urls = [bot.base_url]
    if bot.processes is not None:
        urls = [bot.processes.url_of(w) for w in bot.processes.workers if w.ok]
    params = {"token": bot.token} if bot.token else {}
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10)) as http:
        for url in urls:
            refused = 0
            for name in names:
                try:
                    async with http.put(f"{url}/conversations/{name}/tracker/events", json=[],
                                        params=params) as resp:
                        refused += resp.status >= 400
                except (aiohttp.ClientError, TimeoutError) as exc:  # the server is gone: try the next one
                    log.warning("Rasa at %s not reached to empty trackers: %s", url, exc or type(exc).__name__)
                    break
            if refused:
                log.warning("Rasa at %s refused to empty %d of %d trackers", url, refused, len(names))


async def reset_idle(ctx: AppContext, since: dt.datetime | None, until: dt.datetime, limit: int = 10_000) -> int:
    """Empty, in the running Rasa servers, the trackers of conversations that went quiet before `until`.

    Only for trackers kept in a server's memory (one worker): the window starts at the last purge's
    cutoff (or a week before `until`: older ones were lost with earlier restarts or emptied already)."""
    if ctx.bot is None or await _sql_store(ctx):
        return 0
    from sqlalchemy import select

    from models import Conversation
    start = since or until - dt.timedelta(days=7)
    async with ctx.readers() as session:
        rows = (await session.execute(select(Conversation.channel, Conversation.id).where(
            Conversation.updated_at >= start, Conversation.updated_at < until).limit(limit))).all()
    names = [sender_id(channel, conv_id) for channel, conv_id in rows]
    await _reset_in_servers(ctx, names)
    return len(names)
