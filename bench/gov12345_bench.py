"""Outbox throughput and delay for the 12345 exchange (run by hand; see README).

A fake 12345 platform on 127.0.0.1 answers every message after `--latency` ms. The
service (in this process, its real HTTP endpoint and outbox worker) receives
`--orders` orders spread evenly over `--seconds`; each is assigned, started and
resolved through the lifecycle right after it arrives, so it produces three
messages (签收, 办理中, 办结回复). Reported: messages delivered, throughput, and the
delay from the lifecycle change (the outbox row's creation) to its arrival at
the platform (p50, p99, max), plus whether every order's messages came in order.

    .venv/bin/python bench/gov12345_bench.py --orders 10000 --seconds 600
    .venv/bin/python bench/gov12345_bench.py --database postgresql://postgres@127.0.0.1:5432/bench12345
"""
from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

from aiohttp import ClientSession, web
from sqlalchemy import select

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from hotline.actors import Actor
from hotline.app import create_app
from hotline.auth.staff import upsert_staff
from hotline.channels.gov12345 import Gov12345Config
from hotline.config import Config
from hotline.context import build_context
from hotline.tickets import lifecycle
from hotline.tickets.departments import sync_departments
from models import OutboxMessage, Ticket
from models.migrate import upgrade
from tests.fake_gov12345 import FakeGov12345, Received, order
from tests.service_process import free_port, fresh_postgres_database

ADMIN = Actor(kind="staff", name="bench", role="admin")


async def run(args: argparse.Namespace) -> dict[str, object]:
    tmp = Path(tempfile.mkdtemp(prefix="bench12345-"))
    url = args.database or f"sqlite+aiosqlite:///{tmp / 'hotline.db'}"
    if url.startswith("postgresql"):
        await fresh_postgres_database(url)  # dropped and created again
    await asyncio.to_thread(upgrade, url)

    fake = FakeGov12345(delay=args.latency / 1000)
    arrivals: dict[str, float] = {}
    all_in = asyncio.Event()

    def arrived(r: Received) -> None:
        arrivals[r.body["message_id"]] = time.time()
        if len(arrivals) >= 3 * args.orders:
            all_in.set()

    fake.on_receive = arrived
    await fake.start()

    cfg = Config()
    cfg.database.url = url
    cfg.service.var_dir = str(tmp / "var")
    cfg.escalation.enabled = cfg.callback.enabled = cfg.bot.enabled = cfg.sip.enabled = False
    cfg.channels["gov12345"] = Gov12345Config(inbound_secret=fake.inbound_secret,
                                              outbound_secret=fake.outbound_secret, base_url=fake.url, worker=True,
                                              worker_interval_seconds=1.0, concurrency=args.concurrency)
    ctx = build_context(cfg)
    async with ctx.sessions.begin() as session:
        await sync_departments(session, ctx.router)
        await upsert_staff(session, "crew", "bench-password-1", "department", "crew", "network_repair")
    runner = web.AppRunner(create_app(ctx), access_log=None)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    base = f"http://127.0.0.1:{port}"

    async def one(i: int, http: ClientSession) -> None:
        data = order(f"BENCH-{i:06d}", dt.datetime.now(dt.UTC))
        body = json.dumps(data, ensure_ascii=False).encode()
        while True:  # as 12345 does: a push that failed (500: e.g. SQLite busy) is signed anew and sent again
            async with http.post(f"{base}/gov12345/orders", data=body,
                                 headers=fake.signed(body, dt.datetime.now(dt.UTC))) as resp:
                answer = await resp.json()
            if resp.status == 200:
                number = answer["ticket"]
                break
            push_retries.append(resp.status)
            await asyncio.sleep(1)
        for action, kwargs in (("assign", {"assignee": "crew"}), ("start", {"note": "已派人"}),
                               ("resolve", {"note": "已修复"})):
            async with ctx.sessions.begin() as session:
                ticket = await lifecycle.get_ticket(session, number, ADMIN, for_update=True)
                await lifecycle.transition(session, ctx.router, ticket, action, ADMIN, ctx.clock(), **kwargs)

    push_retries: list[int] = []
    started = time.time()
    async with ClientSession() as http:
        tasks = []
        for i in range(args.orders):
            delay = started + i * args.seconds / args.orders - time.time()
            if delay > 0:
                await asyncio.sleep(delay)
            tasks.append(asyncio.create_task(one(i, http)))
        await asyncio.gather(*tasks)
    pushed = time.time()
    expected = 3 * args.orders
    try:
        await asyncio.wait_for(all_in.wait(), 120)
    except TimeoutError:
        pass
    drained = time.time()

    async with ctx.readers() as session:
        rows = (await session.execute(select(OutboxMessage.message_id, OutboxMessage.created_at, OutboxMessage.key,
                                             OutboxMessage.id))).all()
        tickets = (await session.execute(select(Ticket.id))).all()
    delays = sorted(arrivals[m] - created.timestamp() for m, created, _, _ in rows if m in arrivals)
    by_key: dict[str, list[tuple[int, float]]] = {}
    for m, _, key, row_id in rows:
        if m in arrivals:
            by_key.setdefault(key, []).append((row_id, arrivals[m]))
    in_order = all([a for _, a in sorted(v)] == sorted(a for _, a in v) for v in by_key.values())
    await runner.cleanup()
    await fake.stop()
    return {
        "backend": ctx.engine.dialect.name, "orders": args.orders, "tickets": len(tickets),
        "push_seconds": round(pushed - started, 1), "latency_ms": args.latency,
        "messages_expected": expected, "messages_delivered": len(arrivals), "duplicates": fake.duplicates,
        "throughput_per_s": round(len(arrivals) / (drained - started), 1),
        "delay_p50_ms": round(statistics.median(delays) * 1000), "delay_p99_ms":
        round(delays[int(0.99 * (len(delays) - 1))] * 1000), "delay_max_ms": round(delays[-1] * 1000),
        "in_order_per_order": in_order, "push_retries": len(push_retries),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--orders", type=int, default=10_000)
    parser.add_argument("--seconds", type=float, default=600)
    parser.add_argument("--latency", type=float, default=50, help="the platform's answer time in ms")
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--database", default="", help="a PostgreSQL URL (dropped and migrated); default SQLite")
    args = parser.parse_args()
    result = asyncio.run(run(args))
    print(json.dumps(result, ensure_ascii=False, indent=2))


if __name__ == "__main__":
    main()
