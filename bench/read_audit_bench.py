"""What the read audit costs the context panel (run by hand, not in CI).

Loads the console-shift benchmark's store (N tickets, 20,000 accounts with bills, 10,000 conversations),
then asks for the context panel (GET /api/conversations/{id}/context) through the real HTTP API, signed
in as an agent, alternately with the audit on and off (off: the view's audit_reads replaced by a no-op),
so both see the same machine at the same moment. The first `--warmup` requests of each are dropped.
Percentiles are nearest-rank. Also timed: the audit write alone (audit_reads: one short write
transaction with one row), inside the same requests.

    .venv/bin/python bench/read_audit_bench.py --backend sqlite --tickets 1000000
    .venv/bin/python bench/read_audit_bench.py --backend postgresql --tickets 1000000 \
        --pg-url postgresql+asyncpg://postgres@127.0.0.1:5432/hotline_bench
"""
from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
import math
import random
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from aiohttp.test_utils import TestClient, TestServer
from sqlalchemy import func, select, text

from bench.console_shift_bench import PASSWORD, load_people
from bench.tickets_bench import RESULTS, bulk_load, fresh_store
from hotline.api import context as context_view
from hotline.app import create_app
from hotline.config import Config
from hotline.context import build_context
from models import ReadAudit


def nearest_rank(times: list[float], p: float) -> float:
    ordered = sorted(times)
    return ordered[max(math.ceil(p * len(ordered)) - 1, 0)]


def stats(times: list[float]) -> dict[str, float]:
    return {"n": len(times), "p50_ms": round(nearest_rank(times, 0.50), 2),
            "p90_ms": round(nearest_rank(times, 0.90), 2), "p99_ms": round(nearest_rank(times, 0.99), 2),
            "max_ms": round(max(times), 2)}


async def measure(ctx: Any, conv_ids: list[int], requests: int, warmup: int) -> dict[str, Any]:
    rng = random.Random(3)
    real_audit = context_view.audit_reads
    audit_times: list[float] = []

    async def timed_audit(*args: Any, **kwargs: Any) -> int:
        began = time.perf_counter()
        rows: int = await real_audit(*args, **kwargs)
        audit_times.append((time.perf_counter() - began) * 1000)
        return rows

    async def no_audit(*args: Any, **kwargs: Any) -> int:
        return 0

    times: dict[bool, list[float]] = {True: [], False: []}
    async with TestClient(TestServer(create_app(ctx))) as client:
        resp = await client.post("/api/auth/login", json={"username": "bench.agent", "password": PASSWORD})
        assert resp.status == 200, await resp.text()
        for i in range(warmup + requests):
            conv = rng.choice(conv_ids)
            order = (True, False) if i % 2 == 0 else (False, True)  # alternate which goes first
            for audited in order:
                context_view.audit_reads = timed_audit if audited else no_audit  # type: ignore[assignment]
                began = time.perf_counter()
                r = await client.get(f"/api/conversations/{conv}/context")
                await r.read()
                assert r.status == 200, await r.text()
                if i >= warmup:
                    times[audited].append((time.perf_counter() - began) * 1000)
                elif audited:
                    audit_times.pop()
    context_view.audit_reads = real_audit
    on, off = stats(times[True]), stats(times[False])
    return {"audit_on": on, "audit_off": off, "audit_write_alone": stats(audit_times),
            "p99_added_ms": round(on["p99_ms"] - off["p99_ms"], 2),
            "p50_added_ms": round(on["p50_ms"] - off["p50_ms"], 2)}


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--backend", choices=["sqlite", "postgresql"], default="sqlite")
    parser.add_argument("--pg-url", default="postgresql+asyncpg://postgres@127.0.0.1:5432/hotline_bench")
    parser.add_argument("--tickets", type=int, default=1_000_000)
    parser.add_argument("--requests", type=int, default=500, help="measured requests each, audit on and off")
    parser.add_argument("--warmup", type=int, default=50, help="first requests of each, dropped")
    args = parser.parse_args()
    config = Config()
    config.escalation.enabled = config.callback.enabled = config.bot.enabled = config.sip.enabled = False
    await fresh_store(config, args.backend, args.pg_url, "read-audit")
    now = dt.datetime.now(dt.UTC)
    ctx = build_context(config, lambda: now)
    began = time.perf_counter()
    await bulk_load(ctx, args.tickets, now)
    _, _, conv_ids, _ = await load_people(ctx, now)
    async with ctx.engine.begin() as conn:
        await conn.execute(text("ANALYZE"))
    load_s = time.perf_counter() - began
    print(f"loaded {args.tickets:,} tickets and {len(conv_ids):,} conversations in {load_s:.0f} s", flush=True)
    results = {"backend": args.backend, "tickets": args.tickets, "load_s": round(load_s),
               **await measure(ctx, conv_ids, args.requests, args.warmup)}
    async with ctx.readers() as session:
        results["audit_rows"] = (await session.execute(select(func.count()).select_from(ReadAudit))).scalar_one()
    await ctx.engine.dispose()
    print(json.dumps(results, ensure_ascii=False, indent=2))
    (RESULTS / f"read-audit-{args.backend}.json").write_text(json.dumps(results, ensure_ascii=False, indent=2))


if __name__ == "__main__":
    asyncio.run(main())
