"""Callback sweep benchmark (run by hand, not in CI).

Loads N tickets (default 1,000,000) with a settled callback task for every
resolved one, then measures the callback scheduler's sweep with nothing due,
and with 500 WeChat residents due, their surveys sent to a fake WeChat API on
127.0.0.1 (which answers each call after 5 ms, like a quick real one).

    .venv/bin/python bench/callbacks_bench.py --backend sqlite
    .venv/bin/python bench/callbacks_bench.py --backend postgresql
"""
from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from sqlalchemy import func, insert, select, text

from bench.fake_wechat import fake_wechat
from bench.tickets_bench import RESULTS, bulk_load, fresh_store
from hotline.callbacks.scheduler import sweep
from hotline.config import Config
from hotline.context import build_context
from models import CallbackTask, Conversation, Ticket


async def settled_tasks(ctx, now: dt.datetime) -> int:
    """A callback task, long answered, for every resolved ticket: the table a real store would have."""
    async with ctx.engine.begin() as conn:
        await conn.execute(text(
            "INSERT INTO callback_tasks (ticket_id, resolution, channel, state, manual, due_at, expires_at, "
            "reasks, attempts, result, answered_by, note, created_at) "
            "SELECT id, 0, channel, 'answered', false, created_at, created_at, 0, '[]', 'satisfied', '', '', "
            "created_at FROM tickets WHERE status IN ('resolved', 'callback', 'closed')"))
        return (await conn.execute(select(func.count()).select_from(CallbackTask))).scalar_one()


async def due_surveys(ctx, count: int, now: dt.datetime) -> None:
    """`count` WeChat residents whose resolved tickets' callbacks are due now."""
    async with ctx.sessions.begin() as session:
        ids = list((await session.execute(select(Ticket.id).where(Ticket.status == "in_progress")
                                          .limit(count))).scalars())
        convs = [{"channel": "wechat", "external_user": f"bench-openid-{i}", "status": "closed", "slots": {},
                  "created_at": now, "updated_at": now} for i in range(count)]
        await session.execute(insert(Conversation), convs)
        conv_ids = list((await session.execute(select(Conversation.id).where(
            Conversation.external_user.like("bench-openid-%")).order_by(Conversation.id))).scalars())
        await session.execute(insert(CallbackTask), [{
            "ticket_id": ticket_id, "resolution": 1, "channel": "wechat", "conversation_id": conv_id,
            "resident_channel": "wechat", "external_user": f"bench-openid-{i}", "state": "pending",
            "manual": False, "due_at": now - dt.timedelta(minutes=1), "expires_at": now + dt.timedelta(days=3),
            "next_attempt_at": now - dt.timedelta(minutes=1), "reasks": 0, "attempts": [], "answered_by": "",
            "note": "", "created_at": now} for i, (ticket_id, conv_id) in enumerate(zip(ids, conv_ids, strict=True))])


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--backend", choices=["sqlite", "postgresql"], default="sqlite")
    parser.add_argument("--pg-url", default="postgresql+asyncpg://postgres@127.0.0.1:5432/hotline_bench")
    parser.add_argument("--tickets", type=int, default=1_000_000)
    parser.add_argument("--due", type=int, default=500)
    args = parser.parse_args()

    RESULTS.mkdir(exist_ok=True)
    config = Config()
    config.callback.calling_hours = "00:00-23:59"  # measure at any hour
    await fresh_store(config, args.backend, args.pg_url, "callbacks")
    now = dt.datetime.now(dt.UTC)
    ctx = build_context(config, lambda: now)

    async with fake_wechat(ctx) as fake:
        began = time.perf_counter()
        await bulk_load(ctx, args.tickets, now)
        tasks = await settled_tasks(ctx, now)
        if args.backend == "postgresql":
            async with ctx.engine.connect() as conn:
                await conn.execute(text("ANALYZE"))
        print(f"loaded {args.tickets:,} tickets and {tasks:,} settled callback tasks in "
              f"{time.perf_counter() - began:.0f} s", flush=True)

        idle = []
        for _ in range(20):
            t0 = time.perf_counter()
            await sweep(ctx, now)
            idle.append((time.perf_counter() - t0) * 1000)
        await due_surveys(ctx, args.due, now)
        t0 = time.perf_counter()
        handled = await sweep(ctx, now)
        busy_s = time.perf_counter() - t0
        results = {"backend": args.backend, "tickets": args.tickets, "settled_tasks": tasks,
                   "idle_sweep_ms_p50": round(statistics.median(idle), 2), "idle_sweep_ms_max": round(max(idle), 2),
                   "due": args.due, "handled": handled, "surveys_sent": fake.sent,
                   "sweep_with_due_s": round(busy_s, 2)}
    await ctx.engine.dispose()
    print(json.dumps(results, ensure_ascii=False, indent=2))
    (RESULTS / f"callbacks-{args.backend}.json").write_text(json.dumps(results, ensure_ascii=False, indent=2))


if __name__ == "__main__":
    asyncio.run(main())
