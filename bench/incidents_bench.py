"""Incident benchmark (run by hand, not in CI).

Loads N tickets (default 1,000,000), then measures the detection cost of each
incoming report (one transaction per report, as the service runs it after the
report commits), and the time to tell 10,000 residents bound to accounts in an
area that an outage was published, through a fake WeChat API on 127.0.0.1
(5 ms per call), checking that nobody is told twice.

    .venv/bin/python bench/incidents_bench.py --backend sqlite
    .venv/bin/python bench/incidents_bench.py --backend postgresql
"""
from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from sqlalchemy import insert, select, text

from bench.fake_wechat import fake_wechat
from bench.tickets_bench import RESULTS, bulk_load, fresh_store
from hotline.actors import SERVICE
from hotline.config import Config
from hotline.context import build_context
from hotline.incidents import doors, notices
from hotline.tickets.lifecycle import TicketDraft, create_ticket
from models import Conversation, Customer, Ticket, WechatBinding

AREAS = ["城东片区", "城西片区", "城南片区", "城北片区", "开发区"]
STREET = {"城东片区": "中山东路", "城西片区": "兴华路", "城南片区": "南关大街", "城北片区": "朝阳路",
          "开发区": "科技路"}


def _pct(values: list[float], p: float) -> float:
    values = sorted(values)
    return round(values[min(len(values) - 1, int(len(values) * p))], 2)


async def detection(ctx, reports: int, now: dt.datetime, warmup: int = 0) -> dict[str, float]:
    """The first `warmup` reports (cold caches and plans right after the load) are timed apart."""
    times = []
    for i in range(warmup + reports):
        area = AREAS[i % len(AREAS)]
        async with ctx.sessions.begin() as session:
            ticket = await create_ticket(session, ctx.router, TicketDraft(
                category="repair", business_type="no_water", description="家里没水了", channel="phone",
                address=f"定州市{STREET[area]}{i}号"), SERVICE, now + dt.timedelta(seconds=i))
            ticket_id = ticket.id
        began = time.perf_counter()
        async with ctx.sessions.begin() as session:
            found = await session.get(Ticket, ticket_id)
            assert found is not None
            await doors.detect(session, ctx.router, ctx.incident_rules, found, now + dt.timedelta(seconds=i))
        times.append((time.perf_counter() - began) * 1000)
    cold, times = times[:warmup], times[warmup:]
    return {"reports": reports, "p50_ms": _pct(times, 0.5), "p99_ms": _pct(times, 0.99), "max_ms": _pct(times, 1),
            "warmup": warmup, "warmup_max_ms": _pct(cold, 1) if cold else None}


async def bound_residents(ctx, count: int, now: dt.datetime) -> None:
    async with ctx.sessions.begin() as session:
        await session.execute(insert(Customer), [{
            "account_number": f"39{i:08d}", "name": "居民", "address": f"定州市开发区科技路{i}号", "area": "开发区",
            "meter_model": "LXS-20E", "meter_size_dn": 20, "meter_serial": f"B{i}"} for i in range(count)])
        ids = list((await session.execute(select(Customer.id).where(
            Customer.account_number.like("39%")).order_by(Customer.id))).scalars())
        await session.execute(insert(WechatBinding), [
            {"openid": f"bench-bound-{i}", "customer_id": cid, "bound_at": now} for i, cid in enumerate(ids)])
        await session.execute(insert(Conversation), [{
            "channel": "wechat", "external_user": f"bench-bound-{i}", "status": "closed", "slots": {},
            "created_at": now, "updated_at": now} for i in range(count)])


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--backend", choices=["sqlite", "postgresql"], default="sqlite")
    parser.add_argument("--pg-url", default="postgresql+asyncpg://postgres@127.0.0.1:5432/hotline_bench")
    parser.add_argument("--tickets", type=int, default=1_000_000)
    parser.add_argument("--reports", type=int, default=1000)
    parser.add_argument("--warmup", type=int, default=20, help="reports first, timed apart (cold caches)")
    parser.add_argument("--bound", type=int, default=10_000)
    args = parser.parse_args()

    RESULTS.mkdir(exist_ok=True)
    config = Config()
    await fresh_store(config, args.backend, args.pg_url, "incidents")
    now = dt.datetime.now(dt.UTC)
    ctx = build_context(config, lambda: now)

    async with fake_wechat(ctx) as fake:
        began = time.perf_counter()
        await bulk_load(ctx, args.tickets, now)
        if args.backend == "postgresql":
            async with ctx.engine.connect() as conn:
                await conn.execute(text("ANALYZE"))
        print(f"loaded {args.tickets:,} tickets in {time.perf_counter() - began:.0f} s", flush=True)
        results: dict[str, object] = {"backend": args.backend, "tickets": args.tickets}
        results["detection"] = await detection(ctx, args.reports, now, args.warmup)

        await bound_residents(ctx, args.bound, now)
        async with ctx.sessions.begin() as session:
            outage = await doors.publish_outage(session, areas=["开发区"], title="科技路管道改造", detail="",
                                                planned=True, starts_at=now, ends_at=now + dt.timedelta(hours=6),
                                                actor=SERVICE, now=now)
            outage_id = outage.id
        t0 = time.perf_counter()
        told = await notices.tell_area(ctx, outage_id, "publish")
        elapsed = time.perf_counter() - t0
        results["notify"] = {"bound": args.bound, "told": told, "api_calls": sum(fake.to.values()),
                             "told_twice": sum(1 for n in fake.to.values() if n > 1),
                             "most_calls_at_once": fake.most_in_flight, "seconds": round(elapsed, 1)}
    await ctx.engine.dispose()
    print(json.dumps(results, ensure_ascii=False, indent=2))
    (RESULTS / f"incidents-{args.backend}.json").write_text(json.dumps(results, ensure_ascii=False, indent=2))


if __name__ == "__main__":
    asyncio.run(main())
