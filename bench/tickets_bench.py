"""Ticket store benchmark (run by hand, not in CI).

Loads N tickets (default 1,000,000) into a fresh database, then measures at that
size: create throughput through the lifecycle's create_ticket (one transaction
per ticket, as the API does), the escalation sweep, and the list/filter queries
through the real HTTP API. Results go to stdout and bench/results/.

    .venv/bin/python bench/tickets_bench.py --backend sqlite
    .venv/bin/python bench/tickets_bench.py --backend postgresql \
        --pg-url postgresql://postgres@127.0.0.1:5432/hotline_bench
"""
from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
import random
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from aiohttp.test_utils import TestClient, TestServer
from sqlalchemy import func, insert, select, text, update

from hotline.actors import SERVICE
from hotline.app import create_app
from hotline.config import Config
from hotline.context import build_context
from hotline.tickets.departments import sync_departments
from hotline.tickets.escalation import sweep
from hotline.tickets.lifecycle import TicketDraft, create_ticket
from models import Department, Ticket
from models.db import create_engine
from models.migrate import upgrade

RESULTS = Path(__file__).resolve().parent / "results"
WORDS = ["漏水", "停水", "水压低", "水表不走", "水费高", "发票", "过户", "报装", "投诉", "水质发黄", "阀门坏了", "井盖"]
STATUS_MIX = [("closed", 0.80), ("callback", 0.03), ("resolved", 0.04), ("in_progress", 0.05),
              ("assigned", 0.04), ("new", 0.04)]


async def _fresh_pg(url: str) -> None:
    engine = create_engine(url)
    async with engine.begin() as conn:
        await conn.execute(text("DROP SCHEMA public CASCADE"))
        await conn.execute(text("CREATE SCHEMA public"))
    await engine.dispose()


async def _ensure_pg_database(url: str) -> None:
    import asyncpg
    base, _, name = url.rsplit("/", 1)[0], None, url.rsplit("/", 1)[1]
    conn = await asyncpg.connect(base.replace("postgresql+asyncpg", "postgresql") + "/postgres")
    try:
        if not await conn.fetchval("SELECT 1 FROM pg_database WHERE datname=$1", name):
            await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()


async def fresh_store(config: Config, backend: str, pg_url: str, name: str) -> None:
    """An empty, migrated store for one benchmark: a new SQLite file under bench/results/, or a
    dropped-and-recreated PostgreSQL schema."""
    RESULTS.mkdir(exist_ok=True)
    if backend == "sqlite":
        path = RESULTS / f"{name}.db"
        for suffix in ("", "-wal", "-shm"):
            Path(f"{path}{suffix}").unlink(missing_ok=True)
        config.database.url = f"sqlite+aiosqlite:///{path}"
    else:
        await _ensure_pg_database(pg_url)
        await _fresh_pg(pg_url)
        config.database.url = pg_url
    await asyncio.to_thread(upgrade, config.database_url)


async def bulk_load(ctx, count: int, now: dt.datetime) -> None:
    """Insert `count` tickets spread over two years, without the per-ticket path (that is measured separately)."""
    rng = random.Random(7)
    async with ctx.sessions.begin() as session:
        await sync_departments(session, ctx.router)
        depts = dict((await session.execute(select(Department.code, Department.id))).all())
    types = list(ctx.router.spec.business_types.items())
    statuses, weights = zip(*STATUS_MIX)
    chunk = 5000
    start = now - dt.timedelta(days=730)
    for base in range(0, count, chunk):
        rows = []
        for i in range(base, min(base + chunk, count)):
            created = start + dt.timedelta(seconds=int(730 * 86400 * i / count))
            code, bt = types[rng.randrange(len(types))]
            status = rng.choices(statuses, weights)[0] if created < now - dt.timedelta(days=14) else \
                rng.choice(["new", "assigned", "in_progress", "resolved"])
            due = created + dt.timedelta(hours=24 if bt.category == "repair" else 72)
            is_open = status in ("new", "assigned", "in_progress")
            rows.append({
                "number": f"GD{created:%Y%m%d}-{i:07d}", "category": bt.category, "business_type": code,
                "priority": bt.priority, "channel": rng.choice(["phone", "wechat", "web", "counter"]),
                "status": status, "account_number": f"31{rng.randrange(1, 200000):08d}",
                "contact_phone": f"13{rng.randrange(10**8, 10**9)}", "contact_name": "居民",
                "address": f"定州市中山路{rng.randrange(1, 500)}号",
                "description": f"{rng.choice(WORDS)}，{rng.choice(WORDS)}，请尽快处理",
                "department_id": depts[bt.department], "created_at": created, "updated_at": created,
                "clock_started_at": created, "response_due_at": created + dt.timedelta(hours=4),
                "resolution_due_at": due, "escalation_level": 4 if is_open and due < now else 0,
                "next_escalation_at": None if not is_open or due < now else due, "reopen_count": 0,
            })
        async with ctx.sessions.begin() as session:
            await session.execute(insert(Ticket), rows)
        if base and base % 100_000 == 0:
            print(f"  loaded {base:,}", flush=True)


async def measure_creates(ctx, count: int, concurrency: int) -> dict:
    drafts = [TicketDraft(category="repair", business_type="leak", description=f"压测漏水 {i}", channel="web",
                          phone="13800000000", address="定州市中山路1号") for i in range(count)]
    queue = list(drafts)

    async def worker() -> None:
        while queue:
            draft = queue.pop()
            async with ctx.sessions.begin() as session:
                await create_ticket(session, ctx.router, draft, SERVICE, ctx.clock())

    began = time.perf_counter()
    await asyncio.gather(*[worker() for _ in range(concurrency)])
    elapsed = time.perf_counter() - began
    return {"creates": count, "concurrency": concurrency, "seconds": round(elapsed, 2),
            "per_second": round(count / elapsed)}


async def measure_sweep(ctx, now: dt.datetime) -> dict:
    # Steady state: nothing due. Then 100 tickets whose next step has come.
    began = time.perf_counter()
    await sweep(ctx.sessions, ctx.router, now)
    idle_ms = (time.perf_counter() - began) * 1000
    async with ctx.sessions.begin() as session:
        ids = list((await session.execute(select(Ticket.id).where(
            Ticket.next_escalation_at.is_not(None)).limit(100))).scalars())
        await session.execute(update(Ticket).where(Ticket.id.in_(ids)).values(
            next_escalation_at=now - dt.timedelta(minutes=1), response_due_at=now - dt.timedelta(minutes=1),
            escalation_level=0))
    began = time.perf_counter()
    steps = await sweep(ctx.sessions, ctx.router, now)
    busy_ms = (time.perf_counter() - began) * 1000
    return {"idle_sweep_ms": round(idle_ms, 1), "sweep_100_due_ms": round(busy_ms, 1), "steps_recorded": steps}


async def measure_queries(ctx, repeats: int) -> dict:
    queries = {
        "newest page": "",
        "status=open": "status=open",
        "status=in_progress": "status=in_progress",
        "department": "department=meter",
        "category": "category=complaint",
        "overdue": "overdue=true",
        "account": "account=3100012345",
        "phone": "phone=13812345678",
        "text (common)": "q=漏水",
        "text (rare)": "q=井盖坏了",
        "department+status+overdue": "department=network_repair&status=open&overdue=true",
        "deep page (before_id)": "before_id=300000",
    }
    app = create_app(ctx)
    out = {}
    async with TestClient(TestServer(app)) as client:
        headers = {"Authorization": f"Bearer {ctx.config.api.service_token}"}
        for name, query in queries.items():
            times = []
            for _ in range(repeats):
                began = time.perf_counter()
                resp = await client.get(f"/api/tickets?{query}", headers=headers)
                await resp.read()
                assert resp.status == 200, await resp.text()
                times.append((time.perf_counter() - began) * 1000)
            times.sort()
            out[name] = {"p50_ms": round(statistics.median(times), 1), "max_ms": round(times[-1], 1)}
    return out


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--backend", choices=["sqlite", "postgresql"], default="sqlite")
    parser.add_argument("--pg-url", default="postgresql+asyncpg://postgres@127.0.0.1:5432/hotline_bench")
    parser.add_argument("--tickets", type=int, default=1_000_000)
    parser.add_argument("--creates", type=int, default=5000)
    parser.add_argument("--repeats", type=int, default=20)
    args = parser.parse_args()

    config = Config()
    config.api.service_token = "bench"
    config.escalation.enabled = False
    await fresh_store(config, args.backend, args.pg_url, "bench")
    now = dt.datetime.now(dt.UTC)
    ctx = build_context(config, lambda: now)

    began = time.perf_counter()
    await bulk_load(ctx, args.tickets, now)
    load_s = time.perf_counter() - began
    if args.backend == "postgresql":
        async with ctx.engine.connect() as conn:
            await conn.execute(text("ANALYZE"))
    print(f"loaded {args.tickets:,} tickets in {load_s:.0f} s", flush=True)

    results = {"backend": args.backend, "tickets": args.tickets, "bulk_load_s": round(load_s)}
    results["create_sequential"] = await measure_creates(ctx, args.creates, 1)
    results["create_concurrent"] = await measure_creates(ctx, args.creates, 16)
    results["sweep"] = await measure_sweep(ctx, now)
    results["list_queries"] = await measure_queries(ctx, args.repeats)
    async with ctx.readers() as session:
        results["tickets_at_end"] = (await session.execute(select(func.count()).select_from(Ticket))).scalar_one()
    await ctx.engine.dispose()
    print(json.dumps(results, ensure_ascii=False, indent=2))
    (RESULTS / f"tickets-{args.backend}.json").write_text(json.dumps(results, ensure_ascii=False, indent=2))


if __name__ == "__main__":
    asyncio.run(main())
