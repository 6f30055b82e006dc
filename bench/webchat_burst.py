"""A burst on the web chat: N residents × M messages within a window, on one Rasa process (run by hand).

Each resident opens /ws/chat, sends a message every window/M seconds (starting
at a random offset) and waits for the first answer to it (the bot's, or a
notice). Reported: messages stored (acknowledged), answered by the bot, and
conversations handed to people, with p50/p99 of acknowledgement and reply.

    .venv/bin/python bench/webchat_burst.py                      # starts its own service with the bot
    .venv/bin/python bench/webchat_burst.py --url http://127.0.0.1:8080 --token SERVICE_TOKEN
"""
from __future__ import annotations

import argparse
import asyncio
import json
import random
import sys
import tempfile
import time
import uuid
from pathlib import Path

import aiohttp

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from tests.service_process import ServiceProcess

TEXTS = ["你好", "营业厅几点上班", "怎么办理过户", "水费怎么交", "谢谢"]


def _pct(values: list[float], p: float) -> float:
    values = sorted(values)
    return round(values[min(len(values) - 1, int(len(values) * p))], 0) if values else float("nan")


class Tally:
    def __init__(self) -> None:
        self.sent = self.acked = self.bot = self.notices = self.unanswered = 0
        self.ack_ms: list[float] = []
        self.reply_ms: list[float] = []


RUN = uuid.uuid4().hex[:6]  # this run's residents, told apart from earlier runs' in the same store


async def resident(http: aiohttp.ClientSession, url: str, messages: int, window: float, tally: Tally) -> None:
    client = f"bench-{RUN}-" + uuid.uuid4().hex[:12]
    gap = window / messages
    await asyncio.sleep(random.uniform(0, gap))
    async with http.ws_connect(f"{url.replace('http', 'ws', 1)}/ws/chat?client={client}") as ws:
        await ws.receive_json()  # history
        for i in range(messages):
            began = time.perf_counter()
            message_id = f"m{i}"
            await ws.send_json({"type": "message", "id": message_id, "text": TEXTS[i % len(TEXTS)]})
            tally.sent += 1
            acked = answered = False
            deadline = began + 35.0  # past the bot's long limit (30 s): a message left unanswered counts
            while not (answered and acked) and time.perf_counter() < deadline:
                if answered:  # the old code acknowledged only after the bot: give the receipt a moment
                    deadline = min(deadline, time.perf_counter() + 2.0)
                try:
                    frame = json.loads((await ws.receive(timeout=deadline - time.perf_counter())).data)
                except (TimeoutError, TypeError, ValueError):
                    break
                if frame.get("type") == "ack" and frame.get("id") == message_id and not acked:
                    acked = True
                    tally.acked += 1
                    tally.ack_ms.append((time.perf_counter() - began) * 1000)
                elif frame.get("type") == "message" and frame.get("sender") in ("bot", "system", "agent"):
                    answered = True
                    tally.reply_ms.append((time.perf_counter() - began) * 1000)
                    if frame["sender"] == "bot":
                        tally.bot += 1
                    else:
                        tally.notices += 1
            tally.unanswered += not answered
            await asyncio.sleep(max(0.0, began + gap - time.perf_counter()))
        await asyncio.sleep(2)  # let the last answers' extra lines arrive before closing


async def handed_off(http: aiohttp.ClientSession, url: str, token: str) -> int:
    async with http.get(f"{url}/api/conversations", params={"status": "waiting", "limit": "200"},
                        headers={"Authorization": f"Bearer {token}"}) as resp:
        data = await resp.json()
    items = data["items"] if isinstance(data, dict) else data
    return sum(1 for c in items if str(c.get("external_user", "")).startswith(f"bench-{RUN}-"))


async def run(url: str, token: str, residents: int, messages: int, window: float) -> dict[str, object]:
    tally = Tally()
    connector = aiohttp.TCPConnector(limit=0)  # one socket per resident, however many
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=None), connector=connector) as http:
        began = time.perf_counter()
        await asyncio.gather(*(resident(http, url, messages, window, tally) for _ in range(residents)))
        elapsed = time.perf_counter() - began
        waiting = await handed_off(http, url, token)
    return {"residents": residents, "messages": tally.sent, "stored": tally.acked, "answered_by_bot": tally.bot,
            "notices": tally.notices, "unanswered": tally.unanswered, "handed_to_people": waiting,
            "ack_p50_ms": _pct(tally.ack_ms, 0.5), "ack_p99_ms": _pct(tally.ack_ms, 0.99),
            "reply_p50_ms": _pct(tally.reply_ms, 0.5), "reply_p99_ms": _pct(tally.reply_ms, 0.99),
            "elapsed_s": round(elapsed, 1)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--url", help="a running service (default: start one with the bot)")
    parser.add_argument("--token", default="bench-token", help="its service token")
    parser.add_argument("--residents", type=int, default=200)
    parser.add_argument("--messages", type=int, default=5)
    parser.add_argument("--window", type=float, default=30.0)
    args = parser.parse_args()
    service = None
    url = args.url
    if url is None:
        service = ServiceProcess(Path(tempfile.mkdtemp(prefix="hotline-bench-")), args.token, bot=True).start()
        url = service.url
    try:
        print(json.dumps(asyncio.run(run(url, args.token, args.residents, args.messages, args.window)),
                         ensure_ascii=False))
    finally:
        if service is not None:
            service.stop()


if __name__ == "__main__":
    main()
