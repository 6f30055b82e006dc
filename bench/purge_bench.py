"""Retention purge benchmark (run by hand, not in CI): a year of data due at a million tickets.

Loads N tickets over two years with bench/tickets_bench.py's loader (80 % closed, closed a day or
so after creation), N/2 calls and N/4 web-chat conversations of four messages each over the same
two years, then runs the purge with closed tickets and calling numbers kept 365 days and
conversations 180 (the defaults otherwise): about half of everything is due. While it runs, a
probe commits one small write every 20 ms and times it, which is what the purge makes the
service's other writers wait. Prints and writes bench/results/purge-<backend>.json.

    .venv/bin/python bench/purge_bench.py --backend sqlite --tickets 1000000
    .venv/bin/python bench/purge_bench.py --backend postgresql \
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

from sqlalchemy import insert, select, text, update

from bench.tickets_bench import RESULTS, bulk_load, fresh_store
from hotline.config import Config
from hotline.context import build_context
from hotline.privacy.purge import run_purge
from models import Call, Conversation, Message, PrivacyRun

FILL_CLOSED = {
    "sqlite": "UPDATE tickets SET closed_at = strftime('%Y-%m-%d %H:%M:%f', created_at, '+' || (600 + id % 3000) "
              "|| ' minutes') || '000' WHERE status = 'closed'",
    "postgresql": "UPDATE tickets SET closed_at = created_at + (600 + id % 3000) * interval '1 minute' "
                  "WHERE status = 'closed'",
}


async def load_calls_and_chats(ctx, tickets: int, now: dt.datetime) -> None:  # type: ignore[no-untyped-def]
    rng = random.Random(11)
    start, span = now - dt.timedelta(days=730), 730 * 86400
    calls, convs = tickets // 2, tickets // 4
    chunk = 5000
    for base in range(0, calls, chunk):
        rows = [{"sip_call_id": f"bench-{i}", "caller": f"13{rng.randrange(10**8, 10**9)}", "callee": "96116",
                 "started_at": start + dt.timedelta(seconds=span * i // calls), "menu_path": ["主菜单", "余额查询"],
                 "digits": f"131{rng.randrange(10**8, 10**9)}#", "account_number": f"31{rng.randrange(10**7):08d}",
                 "outcome": "self_served", "direction": "inbound"} for i in range(base, min(base + chunk, calls))]
        async with ctx.sessions.begin() as session:
            await session.execute(insert(Call), rows)
    for base in range(0, convs, chunk // 4):
        async with ctx.sessions.begin() as session:
            heads = []
            for i in range(base, min(base + chunk // 4, convs)):
                at = start + dt.timedelta(seconds=span * i // convs)
                heads.append({"channel": "web", "external_user": f"web-bench-{i}", "status": "closed",
                              "created_at": at, "updated_at": at + dt.timedelta(minutes=10), "slots": {}})
            ids = (await session.execute(insert(Conversation).returning(Conversation.id), heads)).scalars().all()
            await session.execute(insert(Message), [
                {"conversation_id": cid, "channel": "web", "direction": "in" if k % 2 == 0 else "out",
                 "sender_kind": "resident" if k % 2 == 0 else "bot", "text": f"家里水压很低，第{k}条消息",
                 "payload": {},
                 "created_at": head["created_at"] + dt.timedelta(minutes=k)}
                for cid, head in zip(ids, heads, strict=True) for k in range(4)])
        if base and base % 50_000 == 0:
            print(f"  conversations {base:,}", flush=True)


def _percentiles(values: list[float]) -> dict[str, float]:
    ordered = sorted(values) or [0.0]
    return {"p50": round(statistics.median(ordered), 1), "p99": round(ordered[int(len(ordered) * 0.99)], 1),
            "max": round(ordered[-1], 1)}


async def probe(ctx, stop: asyncio.Event, waits: list[float]) -> None:  # type: ignore[no-untyped-def]
    """Another writer: one small committed change every 20 ms, timed from begin to commit."""
    while not stop.is_set():
        began = time.perf_counter()
        async with ctx.sessions.begin() as session:
            await session.execute(update(PrivacyRun).where(PrivacyRun.id == -1).values(error=None))
        waits.append((time.perf_counter() - began) * 1000)
        await asyncio.sleep(0.02)


async def erase_only(args: argparse.Namespace) -> None:
    """One erasure by account on a million-ticket store: the sweep reads every text column of every table."""
    from hotline.actors import SYSTEM
    from hotline.privacy.requests import erase_resident
    from models import Ticket
    config = Config()
    config.database.url = (f"sqlite+aiosqlite:///{RESULTS / 'purge-bench.db'}" if args.backend == "sqlite"
                           else args.pg_url)
    ctx = build_context(config)
    async with ctx.readers() as session:
        account = (await session.execute(select(Ticket.account_number).where(
            Ticket.account_number.is_not(None)).order_by(Ticket.id.desc()).limit(1))).scalar_one()
    began = time.perf_counter()
    done = await erase_resident(ctx, "account", account, SYSTEM)
    print(json.dumps({"backend": args.backend, "erase_s": round(time.perf_counter() - began, 1),
                      "counts": done["counts"]}, ensure_ascii=False))
    await ctx.engine.dispose()


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--backend", choices=["sqlite", "postgresql"], default="sqlite")
    parser.add_argument("--pg-url", default="postgresql+asyncpg://postgres@127.0.0.1:5432/hotline_bench")
    parser.add_argument("--tickets", type=int, default=1_000_000)
    parser.add_argument("--batch-size", type=int, default=500)
    parser.add_argument("--erase-only", action="store_true",
                        help="time one resident's erasure on the store a previous run left (no load, no purge)")
    args = parser.parse_args()
    if args.erase_only:
        await erase_only(args)
        return

    config = Config()
    config.escalation.enabled = config.callback.enabled = False
    config.retention.closed_tickets_days = 365
    config.retention.batch_size = args.batch_size
    await fresh_store(config, args.backend, args.pg_url, "purge-bench")
    now = dt.datetime.now(dt.UTC)
    ctx = build_context(config, lambda: now)
    began = time.perf_counter()
    await bulk_load(ctx, args.tickets, now)
    async with ctx.sessions.begin() as session:
        await session.execute(text(FILL_CLOSED[args.backend]))
    await load_calls_and_chats(ctx, args.tickets, now)
    if args.backend == "postgresql":
        async with ctx.engine.connect() as conn:
            await conn.execute(text("ANALYZE"))
    load_s = time.perf_counter() - began
    print(f"loaded in {load_s:.0f} s", flush=True)

    dry = await run_purge(ctx, dry_run=True)
    print("due:", dry.counts, flush=True)
    stop, waits = asyncio.Event(), []
    prober = asyncio.create_task(probe(ctx, stop, waits))
    began = time.perf_counter()
    report = await run_purge(ctx)
    purge_s = time.perf_counter() - began
    stop.set()
    await prober
    results = {
        "backend": args.backend, "tickets": args.tickets, "batch_size": args.batch_size, "load_s": round(load_s),
        "due": dry.counts, "purged": report.counts, "purge_s": round(purge_s, 1), "batches": report.batches,
        "longest_batch_ms": round(report.longest_batch_ms, 1), "longest_by_pass": report.longest_by_pass,
        "batch_ms": _percentiles(report.batch_ms), "batches_over_100_ms": sum(b > 100 for b in report.batch_ms),
        "other_writer_ms": dict(_percentiles(waits), samples=len(waits)),
    }
    began = time.perf_counter()
    again = await run_purge(ctx)
    results["next_day_purge_s"] = round(time.perf_counter() - began, 2)
    results["next_day_purged"] = again.counts
    await ctx.engine.dispose()
    print(json.dumps(results, ensure_ascii=False, indent=2))
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / f"purge-{args.backend}.json").write_text(json.dumps(results, ensure_ascii=False, indent=2))


if __name__ == "__main__":
    asyncio.run(main())
