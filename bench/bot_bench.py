"""Latency of the running bot (run by hand, with the service running: scripts/run.sh).

NLU parse (`/model/parse`) and whole dialogue turns through the REST channel:
a rule answered by Rasa alone (greet), and a turn that runs a custom action
which calls the hotline API (a billing answer for an account). Sequential, then
N residents at once.

    .venv/bin/python bench/bot_bench.py --rasa-url http://127.0.0.1:5005 --rasa-token … --requests 200

Rasa's HTTP API and REST channel need Rasa's token (`?token=`): `[bot] rasa_token` or
HOTLINE_BOT_RASA_TOKEN, the value the service started Rasa with. `--parse-only` measures only
`/model/parse` (a Rasa server started by hand with `rasa run --enable-api --auth-token …`).
"""
from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import time
import uuid
from pathlib import Path

import aiohttp

MESSAGES = ["家里没水了", "查一下水费", "怎么办理过户", "我要投诉维修太慢", "转人工", "水压很低",
            "营业厅几点上班", "我的工单到哪一步了", "自来水发黄", "谢谢"]


def _summary(times: list[float]) -> dict[str, float]:
    times = sorted(times)
    return {"n": len(times), "p50_ms": round(statistics.median(times), 1),
            "p99_ms": round(times[min(len(times) - 1, int(len(times) * 0.99))], 1), "max_ms": round(times[-1], 1)}


async def _timed(session: aiohttp.ClientSession, url: str, body: dict) -> float:
    began = time.perf_counter()
    async with session.post(url, json=body) as resp:
        await resp.read()
        assert resp.status == 200, resp.status
    return (time.perf_counter() - began) * 1000


async def run(rasa: str, requests: int, concurrency: int, token: str, parse_only: bool = False) -> dict:
    results: dict[str, dict] = {}
    async with aiohttp.ClientSession() as session:
        def with_token(url: str) -> str:
            return f"{url}?token={token}" if token else url

        async def parse(i: int) -> float:
            return await _timed(session, with_token(f"{rasa}/model/parse"), {"text": MESSAGES[i % len(MESSAGES)]})

        async def greet(i: int) -> float:
            return await _timed(session, with_token(f"{rasa}/webhooks/rest/webhook"),
                                {"sender": f"bench-{uuid.uuid4().hex}", "message": "你好"})

        async def billing(i: int) -> float:
            sender = f"bench-{uuid.uuid4().hex}"
            await _timed(session, with_token(f"{rasa}/webhooks/rest/webhook"), {"sender": sender, "message": "查水费"})
            return await _timed(session, with_token(f"{rasa}/webhooks/rest/webhook"),
                                {"sender": sender, "message": f"31{(i % 3000) + 1:08d}"})

        kinds = (("nlu_parse", parse), ("turn_rule_greet", greet), ("turn_action_billing", billing))
        for name, fn in kinds[:1] if parse_only else kinds:
            await fn(0)  # warm up
            seq = [await fn(i) for i in range(requests)]
            results[f"{name}_sequential"] = _summary(seq)
            queue = list(range(requests))
            conc: list[float] = []

            async def worker() -> None:
                while queue:
                    conc.append(await fn(queue.pop()))
            await asyncio.gather(*[worker() for _ in range(concurrency)])
            results[f"{name}_{concurrency}_at_once"] = _summary(conc)
    return results


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rasa-url", default="http://127.0.0.1:5005")
    parser.add_argument("--requests", type=int, default=200)
    parser.add_argument("--concurrency", type=int, default=10)
    parser.add_argument("--rasa-token", default=os.environ.get("HOTLINE_BOT_RASA_TOKEN", ""))
    parser.add_argument("--parse-only", action="store_true")
    args = parser.parse_args()
    results = asyncio.run(run(args.rasa_url.rstrip("/"), args.requests, args.concurrency, args.rasa_token,
                              args.parse_only))
    print(json.dumps(results, indent=2))
    out = Path(__file__).resolve().parent / "results"
    out.mkdir(exist_ok=True)
    (out / "bot.json").write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
