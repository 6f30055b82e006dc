"""Latency from a resident's web-chat message to its appearance in agents' browsers (run by hand).

Starts its own service process(es) with demo staff, opens N consoles in headless
Chromium, each showing the same conversation, and has a resident send messages
over /ws/chat. Each page's MutationObserver stamps the moment the message's
element is added to the transcript; the latency is that stamp minus the moment
the resident sent it (one machine, one wall clock).

    .venv/bin/python bench/console_bench.py --consoles 20 --messages 100
    # two service processes on PostgreSQL: resident on one, every console on the other
    .venv/bin/python bench/console_bench.py --processes 2 --database-url postgresql://postgres@127.0.0.1:5432/hotline_bench_console
"""
from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

import aiohttp
from playwright.async_api import async_playwright

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from tests.browser.conftest import DEMO_PASSWORD, chromium_path  # noqa: E402
from tests.service_process import ServiceProcess  # noqa: E402

OBSERVER = """() => {
  window.__seen = [];
  new MutationObserver((records) => {
    const now = Date.now();
    for (const r of records) for (const n of r.addedNodes) {
      const m = /bench-(\\d+)/.exec(n.textContent || "");
      if (m) window.__seen.push([Number(m[1]), now]);
    }
  }).observe(document.getElementById("transcript"), {childList: true});
}"""


async def ensure_database(url: str) -> None:
    import asyncpg
    from sqlalchemy.engine import make_url
    parsed = make_url(url)
    conn = await asyncpg.connect(host=parsed.host, port=parsed.port, user=parsed.username, database="postgres")
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{parsed.database}" WITH (FORCE)')
        await conn.execute(f'CREATE DATABASE "{parsed.database}"')
    finally:
        await conn.close()


def summary(values: list[float]) -> dict[str, float]:
    values = sorted(values)
    pick = lambda q: values[min(len(values) - 1, int(len(values) * q))]  # noqa: E731
    return {"n": len(values), "p50_ms": round(statistics.median(values), 1), "p99_ms": round(pick(0.99), 1),
            "max_ms": round(values[-1], 1)}


async def run(args: argparse.Namespace) -> dict[str, object]:
    var = Path(tempfile.mkdtemp(prefix="console-bench-"))
    env = {"HOTLINE_DATABASE_URL": args.database_url} if args.database_url else {}
    if args.database_url:
        await ensure_database(args.database_url)
    services = [ServiceProcess(var / f"p{i}", "bench-token", bot=False, seed_accounts=10, env=env)
                for i in range(args.processes)]
    for i, svc in enumerate(services):
        await asyncio.to_thread(svc.start, i == 0)
    console_at, resident_at = services[0], services[-1]
    try:
        async with async_playwright() as p, aiohttp.ClientSession() as http:
            browser = await p.chromium.launch(executable_path=chromium_path(), args=["--no-sandbox"])
            ws_url = resident_at.url.replace("http", "ws") + "/ws/chat?client=bench-resident-1"
            resident = await http.ws_connect(ws_url)
            await resident.send_json({"type": "message", "id": "hello", "text": "你好，我要找人工"})
            conv_id = None
            while conv_id is None:
                await asyncio.sleep(0.2)
                found = await asyncio.to_thread(console_at.api, "/api/conversations?status=waiting")
                conv_id = found["items"][0]["id"] if found["items"] else None
            pages = []
            for i in range(args.consoles):
                ctx = await browser.new_context()
                page = await ctx.new_page()
                await page.goto(f"{console_at.url}/console")
                await page.fill("#login-username", "zhao.supervisor")
                await page.fill("#login-password", DEMO_PASSWORD)
                await page.click("#login-submit")
                await page.wait_for_selector("#live-status.on")
                await page.goto(f"{console_at.url}/console#queue/{conv_id}")
                await page.wait_for_selector("#transcript li")
                await page.evaluate(OBSERVER)
                pages.append(page)
            sent: dict[int, float] = {}
            for i in range(args.messages):
                sent[i] = time.time() * 1000
                await resident.send_json({"type": "message", "id": f"b{i}", "text": f"bench-{i} 水压低"})
                await asyncio.sleep(args.interval)
            await asyncio.sleep(2)
            latencies: list[float] = []
            missing = 0
            for page in pages:
                seen = {n: at for n, at in await page.evaluate("window.__seen")}
                missing += sum(1 for n in sent if n not in seen)
                latencies += [seen[n] - sent[n] for n in sent if n in seen]
            await browser.close()
    finally:
        for svc in services:
            svc.stop()
    return {"consoles": args.consoles, "messages": args.messages, "processes": args.processes,
            "database": "postgresql" if args.database_url else "sqlite", "missing": missing, **summary(latencies)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--consoles", type=int, default=20)
    parser.add_argument("--messages", type=int, default=100)
    parser.add_argument("--interval", type=float, default=0.2, help="seconds between the resident's messages")
    parser.add_argument("--processes", type=int, default=1, help="2 needs --database-url (PostgreSQL)")
    parser.add_argument("--database-url", default="")
    args = parser.parse_args()
    if args.processes > 1 and not args.database_url.startswith("postgresql"):
        parser.error("several processes share one PostgreSQL database: give --database-url")
    print(json.dumps(asyncio.run(run(args)), ensure_ascii=False))


if __name__ == "__main__":
    main()
