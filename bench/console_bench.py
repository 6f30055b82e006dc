"""Latency from a resident's web-chat message to its appearance in agents' browsers (run by hand).

Starts its own service process(es) with demo staff, opens N consoles in headless
Chromium, each showing the same conversation, and has a resident send messages
over /ws/chat. Each page's MutationObserver stamps the moment the message's
element is added to the transcript; the latency is that stamp minus the moment
the resident sent it (one machine, one wall clock).

    .venv/bin/python bench/console_bench.py --consoles 20 --messages 100
    # the server alone: 20 signed-in /ws/events sockets instead of browsers
    .venv/bin/python bench/console_bench.py --consoles 20 --messages 300 --interval 0.05 --sockets
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
from tests.browser.conftest import DEMO_PASSWORD, chromium_path
from tests.service_process import ServiceProcess, fresh_postgres_database

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


def summary(values: list[float]) -> dict[str, float]:
    values = sorted(values)
    pick = lambda q: values[min(len(values) - 1, int(len(values) * q))]  # noqa: E731
    return {"n": len(values), "p50_ms": round(statistics.median(values), 1), "p99_ms": round(pick(0.99), 1),
            "max_ms": round(values[-1], 1)}


async def run(args: argparse.Namespace) -> dict[str, object]:
    var = Path(tempfile.mkdtemp(prefix="console-bench-"))
    env = {"HOTLINE_DATABASE_URL": args.database_url} if args.database_url else {}
    if args.database_url:
        await fresh_postgres_database(args.database_url)
    services = [ServiceProcess(var / f"p{i}", "bench-token", bot=False, seed_accounts=10, env=env)
                for i in range(args.processes)]
    for i, svc in enumerate(services):
        await asyncio.to_thread(svc.start, i == 0)
    console_at, resident_at = services[0], services[-1]
    try:
        async with async_playwright() as p, aiohttp.ClientSession() as http:
            browser = None if args.sockets else await p.chromium.launch(executable_path=chromium_path(),
                                                                        args=["--no-sandbox"])
            ws_url = resident_at.url.replace("http", "ws") + "/ws/chat?client=bench-resident-1"
            resident = await http.ws_connect(ws_url)
            await resident.send_json({"type": "message", "id": "hello", "text": "你好，我要找人工"})
            conv_id = None
            while conv_id is None:
                await asyncio.sleep(0.2)
                found = await asyncio.to_thread(console_at.api, "/api/conversations?status=waiting")
                conv_id = found["items"][0]["id"] if found["items"] else None
            pages: list = []
            sockets: list[tuple[aiohttp.ClientSession, aiohttp.ClientWebSocketResponse, dict[int, float]]] = []
            for i in range(args.consoles if args.sockets else 0):
                staff = aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True))  # cookies for 127.0.0.1
                await staff.post(f"{console_at.url}/api/auth/login",
                                 json={"username": "zhao.supervisor", "password": DEMO_PASSWORD})
                events = await staff.ws_connect(console_at.url.replace("http", "ws") + "/ws/events")
                seen_at: dict[int, float] = {}
                sockets.append((staff, events, seen_at))

                async def listen(events=events, seen_at=seen_at) -> None:
                    async for frame in events:
                        evt = json.loads(frame.data)
                        text = (evt.get("message") or {}).get("text", "")
                        if text.startswith("bench-"):
                            seen_at[int(text.split()[0][6:])] = time.time() * 1000
                asyncio.create_task(listen())
            for i in range(0 if args.sockets else args.consoles):
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
            seen_by = [{n: at for n, at in await page.evaluate("window.__seen")} for page in pages]
            seen_by += [seen_at for _, _, seen_at in sockets]
            for seen in seen_by:
                missing += sum(1 for n in sent if n not in seen)
                latencies += [seen[n] - sent[n] for n in sent if n in seen]
            for staff, events, _ in sockets:
                await events.close()
                await staff.close()
            if browser is not None:
                await browser.close()
    finally:
        for svc in services:
            svc.stop()
    return {"consoles": args.consoles, "kind": "sockets" if args.sockets else "chromium",
            "messages": args.messages, "interval_s": args.interval, "processes": args.processes,
            "database": "postgresql" if args.database_url else "sqlite", "missing": missing, **summary(latencies)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--consoles", type=int, default=20)
    parser.add_argument("--messages", type=int, default=100)
    parser.add_argument("--interval", type=float, default=0.2, help="seconds between the resident's messages")
    parser.add_argument("--processes", type=int, default=1, help="2 needs --database-url (PostgreSQL)")
    parser.add_argument("--database-url", default="")
    parser.add_argument("--sockets", action="store_true", help="bare /ws/events sockets instead of browsers")
    args = parser.parse_args()
    if args.processes > 1 and not args.database_url.startswith("postgresql"):
        parser.error("several processes share one PostgreSQL database: give --database-url")
    print(json.dumps(asyncio.run(run(args)), ensure_ascii=False))


if __name__ == "__main__":
    main()
