"""Reports, /commitments and /metrics benchmark (run by hand, not in CI).

Loads N tickets with bench/tickets_bench.py's loader (spread over two years), fills in response,
resolution and callback times with SQL, then times every report through the real HTTP API for one
month and for a whole year, /commitments (p99, from memory) and /metrics.

    .venv/bin/python bench/reports_bench.py --backend sqlite --tickets 1000000
    .venv/bin/python bench/reports_bench.py --backend postgresql \
        --pg-url postgresql://postgres@127.0.0.1:5432/hotline_bench
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

from aiohttp.test_utils import TestClient, TestServer
from sqlalchemy import text

from bench.tickets_bench import RESULTS, _ensure_pg_database, _fresh_pg, bulk_load
from hotline.app import create_app
from hotline.config import Config
from hotline.context import build_context
from hotline.reports.queries import REPORTS
from models.migrate import upgrade

# Response after id%300 minutes, resolution after id%2000 minutes for done tickets, ratings on most.
FILL_SQLITE = """
UPDATE tickets SET
  responded_at = CASE WHEN status != 'new'
    THEN strftime('%Y-%m-%d %H:%M:%f', created_at, '+' || (id % 300) || ' minutes') || '000' END,
  resolved_at = CASE WHEN status IN ('resolved', 'callback', 'closed')
    THEN strftime('%Y-%m-%d %H:%M:%f', created_at, '+' || (id % 2000) || ' minutes') || '000' END,
  callback_at = CASE WHEN status IN ('callback', 'closed')
    THEN strftime('%Y-%m-%d %H:%M:%f', created_at, '+' || (2000 + id % 600) || ' minutes') || '000' END,
  satisfaction = CASE WHEN status IN ('callback', 'closed') AND id % 10 != 0 THEN 1 + id % 5 END,
  reopen_count = CASE WHEN id % 37 = 0 THEN 1 ELSE 0 END
"""
FILL_PG = """
UPDATE tickets SET
  responded_at = CASE WHEN status != 'new' THEN created_at + (id % 300) * interval '1 minute' END,
  resolved_at = CASE WHEN status IN ('resolved', 'callback', 'closed')
    THEN created_at + (id % 2000) * interval '1 minute' END,
  callback_at = CASE WHEN status IN ('callback', 'closed')
    THEN created_at + (2000 + id % 600) * interval '1 minute' END,
  satisfaction = CASE WHEN status IN ('callback', 'closed') AND id % 10 != 0 THEN 1 + id % 5 END,
  reopen_count = CASE WHEN id % 37 = 0 THEN 1 ELSE 0 END
"""


def _stats(times: list[float]) -> dict[str, float]:
    times = sorted(times)
    return {"p50_ms": round(statistics.median(times), 1),
            "p99_ms": round(times[min(len(times) - 1, int(len(times) * 0.99))], 1), "max_ms": round(times[-1], 1)}


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--backend", choices=["sqlite", "postgresql"], default="sqlite")
    parser.add_argument("--pg-url", default="postgresql+asyncpg://postgres@127.0.0.1:5432/hotline_bench")
    parser.add_argument("--tickets", type=int, default=1_000_000)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--reuse", action="store_true", help="keep the store of the previous run")
    args = parser.parse_args()

    RESULTS.mkdir(exist_ok=True)
    config = Config()
    config.api.service_token = "bench"
    config.escalation.enabled = False
    config.bot.enabled = False
    config.sip.enabled = False
    config.metrics.sql_max_age_seconds = 0  # every scrape pays for its SQL
    if args.backend == "sqlite":
        path = RESULTS / "reports-bench.db"
        if not args.reuse:
            for suffix in ("", "-wal", "-shm"):
                Path(f"{path}{suffix}").unlink(missing_ok=True)
        config.database.url = f"sqlite+aiosqlite:///{path}"
    else:
        await _ensure_pg_database(args.pg_url)
        if not args.reuse:
            await _fresh_pg(args.pg_url)
        config.database.url = args.pg_url
    await asyncio.to_thread(upgrade, config.database_url)
    now = dt.datetime.now(dt.UTC)
    ctx = build_context(config, lambda: now)
    results: dict[str, object] = {"backend": args.backend, "tickets": args.tickets}
    if not args.reuse:
        began = time.perf_counter()
        await bulk_load(ctx, args.tickets, now)
        async with ctx.engine.begin() as conn:
            await conn.execute(text(FILL_PG if args.backend == "postgresql" else FILL_SQLITE))
        if args.backend == "postgresql":
            async with ctx.engine.connect() as conn:
                await conn.execute(text("COMMIT"))
                await conn.execute(text("VACUUM ANALYZE tickets"))
        else:
            async with ctx.engine.begin() as conn:
                await conn.execute(text("ANALYZE"))
        results["load_s"] = round(time.perf_counter() - began)
        print(f"loaded {args.tickets:,} tickets in {results['load_s']} s", flush=True)

    today = ctx.today()
    ranges = {"month": (today.replace(day=1) - dt.timedelta(days=1)).replace(day=1),
              "year": today - dt.timedelta(days=364)}
    app = create_app(ctx)
    async with TestClient(TestServer(app)) as client:
        headers = {"Authorization": "Bearer bench"}
        reports: dict[str, dict[str, float]] = {}
        for span, first in ranges.items():
            last = (first.replace(day=28) + dt.timedelta(days=4)).replace(day=1) - dt.timedelta(days=1) \
                if span == "month" else today
            for name in REPORTS:
                times = []
                for _ in range(args.repeats):
                    began = time.perf_counter()
                    resp = await client.get(f"/api/reports/{name}?from={first}&to={last}", headers=headers)
                    body = await resp.json()
                    assert resp.status == 200, body
                    times.append((time.perf_counter() - began) * 1000)
                reports[f"{name} ({span})"] = _stats(times)
                print(f"{name:11s} {span:5s} {reports[f'{name} ({span})']}", flush=True)
        results["reports"] = reports
        for path, n in (("/commitments", 1000), ("/metrics", 200)):
            resp = await client.get(path)  # the first builds (commitments) or warms up
            assert resp.status == 200
            began = time.perf_counter()
            await client.get(path)
            first_ms = (time.perf_counter() - began) * 1000
            times = []
            for _ in range(n):
                began = time.perf_counter()
                resp = await client.get(path)
                await resp.read()
                times.append((time.perf_counter() - began) * 1000)
            results[path] = {**_stats(times), "first_ms": round(first_ms, 1)}
            print(path, results[path], flush=True)
        began = time.perf_counter()
        await app[__import__("hotline.reports.commitments", fromlist=["PAGE"]).PAGE].build()
        results["commitments_rebuild_ms"] = round((time.perf_counter() - began) * 1000)
    await ctx.engine.dispose()
    print(json.dumps(results, ensure_ascii=False, indent=2))
    (RESULTS / f"reports-{args.backend}.json").write_text(json.dumps(results, ensure_ascii=False, indent=2))


if __name__ == "__main__":
    asyncio.run(main())
