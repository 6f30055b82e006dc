"""Console-for-a-shift benchmark (run by hand, not in CI).

Loads N tickets (bench/tickets_bench.py's bulk_load), 20,000 accounts with a phone and a year of bills,
10,000 conversations with five messages each (half of them with the account the bot confirmed, 200
served by one agent), then measures through the real HTTP API, signed in as that agent: the context
panel, the search box by 户号 and by phone, the history list searched by 户号, and the agent's queue.

    .venv/bin/python bench/console_shift_bench.py --backend sqlite --tickets 1000000
    .venv/bin/python bench/console_shift_bench.py --backend postgresql --tickets 1000000 \
        --pg-url postgresql+asyncpg://postgres@127.0.0.1:5432/hotline_bench
"""
from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
import random
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from aiohttp.test_utils import TestClient, TestServer
from sqlalchemy import insert, select, text

from bench.tickets_bench import RESULTS, bulk_load, fresh_store
from hotline.app import create_app
from hotline.auth.staff import upsert_staff
from hotline.config import Config
from hotline.context import build_context
from models import Bill, Conversation, Customer, CustomerPhone, Message, Staff

ACCOUNTS = 20_000
CONVERSATIONS = 10_000
PASSWORD = "bench-password-123"


async def load_people(ctx, now: dt.datetime) -> tuple[list[str], list[str], list[int], int]:
    """Accounts (those the tickets name), phones, bills, conversations and messages, in bulk."""
    rng = random.Random(11)
    async with ctx.sessions.begin() as session:
        agent = await upsert_staff(session, "bench.agent", PASSWORD, "agent", "压测坐席", "customer_service")
        agent_id = agent.id
    accounts = [f"31{rng.randrange(1, 200000):08d}" for _ in range(ACCOUNTS)]
    accounts = list(dict.fromkeys(accounts))
    phones = [f"139{i:08d}" for i in range(len(accounts))]
    async with ctx.sessions.begin() as session:
        await session.execute(insert(Customer), [
            {"account_number": a, "name": "王小明", "address": f"定州市中山路{i % 500}号", "area": "城东片区",
             "meter_model": "LXS-20", "meter_size_dn": 20, "meter_serial": f"M{i}", "status": "active",
             "created_at": now} for i, a in enumerate(accounts)])
        ids = dict((await session.execute(select(Customer.account_number, Customer.id))).all())
        await session.execute(insert(CustomerPhone), [{"customer_id": ids[a], "phone": p}
                                                      for a, p in zip(accounts, phones, strict=True)])
        bills = []
        for a in accounts:
            for m in range(1, 13):
                bills.append({"customer_id": ids[a], "period": f"2025-{m:02d}", "reading_previous": m * 10,
                              "reading_current": m * 10 + 9, "volume_m3": 9, "amount_fen": 3015,
                              "late_fee_fen": 0, "paid_fen": 3015 if m < 12 else 0,
                              "issued_on": dt.date(2025, m, 1), "due_on": dt.date(2025, m, 28)})
        for start in range(0, len(bills), 20_000):
            await session.execute(insert(Bill), bills[start:start + 20_000])
    conv_ids: list[int] = []
    async with ctx.sessions.begin() as session:
        rows = []
        for i in range(CONVERSATIONS):
            served = i < 200
            account = accounts[i % len(accounts)]
            rows.append({"channel": "web", "external_user": f"bench-{i}", "status": "agent" if served else "closed",
                         "agent_id": agent_id, "customer_id": ids[account] if i % 2 == 0 else None,
                         "slots": {"learned": {"account_number": account}} if i % 2 else {},
                         "created_at": now - dt.timedelta(minutes=i), "updated_at": now - dt.timedelta(minutes=i),
                         "closed_at": None if served else now - dt.timedelta(minutes=i - 5)})
        await session.execute(insert(Conversation), rows)
        conv_ids = list((await session.execute(select(Conversation.id).order_by(Conversation.id))).scalars())
        messages = [{"conversation_id": c, "channel": "web", "direction": "in" if k % 2 == 0 else "out",
                     "sender_kind": "resident" if k % 2 == 0 else "agent", "kind": "text", "payload": {},
                     "text": f"我家水管漏水了，第{k}句", "created_at": now, "delivery_status": "delivered"}
                    for c in conv_ids for k in range(5)]
        for start in range(0, len(messages), 20_000):
            await session.execute(insert(Message), messages[start:start + 20_000])
    return accounts, phones, conv_ids, agent_id


def _stats(times: list[float]) -> dict[str, float]:
    times = sorted(times)
    return {"p50_ms": round(times[len(times) // 2], 1), "p99_ms": round(times[int(len(times) * 0.99) - 1], 1),
            "max_ms": round(times[-1], 1), "n": len(times)}


async def measure(ctx, accounts: list[str], phones: list[str], conv_ids: list[int], repeats: int) -> dict:
    rng = random.Random(5)
    out: dict[str, dict[str, float]] = {}
    async with TestClient(TestServer(create_app(ctx))) as client:
        resp = await client.post("/api/auth/login", json={"username": "bench.agent", "password": PASSWORD})
        assert resp.status == 200, await resp.text()

        async def timed(name: str, paths: list[str]) -> None:
            times = []
            for path in paths:
                began = time.perf_counter()
                r = await client.get(path)
                await r.read()
                assert r.status == 200, (path, await r.text())
                times.append((time.perf_counter() - began) * 1000)
            out[name] = _stats(times)

        picks = [rng.randrange(len(accounts)) for _ in range(repeats)]
        await timed("context panel (GET /api/conversations/{id}/context)",
                    [f"/api/conversations/{rng.choice(conv_ids)}/context" for _ in range(repeats)])
        await timed("search by 户号 (GET /api/search?q=)", [f"/api/search?q={accounts[i]}" for i in picks])
        await timed("search by phone (GET /api/search?q=)", [f"/api/search?q={phones[i]}" for i in picks])
        await timed("history by 户号 (GET /api/conversations?q=)",
                    [f"/api/conversations?q={accounts[i]}" for i in picks[: max(repeats // 4, 20)]])
        await timed("queue with 200 served (GET /api/queue)", ["/api/queue"] * 20)
        await timed("ticket list by phone (GET /api/tickets?q=)", [f"/api/tickets?q={phones[i]}" for i in picks])
    return out


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--backend", choices=["sqlite", "postgresql"], default="sqlite")
    parser.add_argument("--pg-url", default="postgresql+asyncpg://postgres@127.0.0.1:5432/hotline_bench")
    parser.add_argument("--tickets", type=int, default=1_000_000)
    parser.add_argument("--repeats", type=int, default=200)
    parser.add_argument("--passes", type=int, default=2, help="the first pass runs on cold caches after the load")
    args = parser.parse_args()
    RESULTS.mkdir(exist_ok=True)
    config = Config()
    config.escalation.enabled = config.callback.enabled = config.bot.enabled = config.sip.enabled = False
    await fresh_store(config, args.backend, args.pg_url, "console-shift")
    now = dt.datetime.now(dt.UTC)
    ctx = build_context(config, lambda: now)
    began = time.perf_counter()
    await bulk_load(ctx, args.tickets, now)
    accounts, phones, conv_ids, _ = await load_people(ctx, now)
    async with ctx.engine.begin() as conn:
        await conn.execute(text("ANALYZE"))
    load_s = time.perf_counter() - began
    print(f"loaded {args.tickets:,} tickets, {len(accounts):,} accounts, {len(conv_ids):,} conversations "
          f"in {load_s:.0f} s", flush=True)
    results = {"backend": args.backend, "tickets": args.tickets, "conversations": len(conv_ids),
               "accounts": len(accounts), "load_s": round(load_s),
               "passes": [await measure(ctx, accounts, phones, conv_ids, args.repeats) for _ in range(args.passes)]}
    async with ctx.readers() as session:
        results["staff"] = len((await session.execute(select(Staff.id))).all())
    await ctx.engine.dispose()
    print(json.dumps(results, ensure_ascii=False, indent=2))
    (RESULTS / f"console-shift-{args.backend}.json").write_text(json.dumps(results, ensure_ascii=False, indent=2))


if __name__ == "__main__":
    asyncio.run(main())
