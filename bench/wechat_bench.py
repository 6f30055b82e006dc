"""End-to-end latency: a WeChat push to /wechat until its passive reply, beside the same load sent
straight to the Rasa server (run by hand).

Start the service with WeChat configured like tests/wechat_client.py and outbound
calls kept on this machine:

    HOTLINE_WECHAT_TOKEN=hotline-test-token HOTLINE_WECHAT_APP_ID=wx1234567890abcdef \
    HOTLINE_WECHAT_APP_SECRET=x HOTLINE_WECHAT_ENCODING_AES_KEY=abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG \
    HOTLINE_WECHAT_API_BASE_URL=http://127.0.0.1:9 .venv/bin/python run_hotline.py serve
    .venv/bin/python bench/wechat_bench.py --residents 1 50 --messages 4
"""
from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import statistics
import sys
import time
import uuid
from pathlib import Path

import aiohttp

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from tests import wechat_client as wx

TEXTS = ["你好", "怎么办理过户", "营业厅几点上班", "谢谢"]
MSG_IDS = itertools.count(int(time.time() * 1000) * 1000)


def _summary(times: list[float]) -> dict[str, float]:
    times = sorted(times)
    return {"n": len(times), "p50_ms": round(statistics.median(times), 1),
            "p99_ms": round(times[min(len(times) - 1, int(len(times) * 0.99))], 1)}


async def wechat_resident(session: aiohttp.ClientSession, url: str, messages: int, out: list[float],
                          misses: list[str]) -> None:
    openid = "bench-" + uuid.uuid4().hex[:16]
    for i in range(messages):
        # Unique across residents: the service drops a repeated MsgId as WeChat's retry.
        query, body = wx.push(wx.message("text", openid, next(MSG_IDS), Content=TEXTS[i % len(TEXTS)]), "aes")
        began = time.perf_counter()
        async with session.post(f"{url}/wechat", params=query, data=body.encode()) as resp:
            text = await resp.text()
        out.append((time.perf_counter() - began) * 1000)
        if not wx.reply_text(text):
            misses.append(openid)


async def rasa_resident(session: aiohttp.ClientSession, url: str, messages: int, out: list[float]) -> None:
    sender = "bench-" + uuid.uuid4().hex[:16]
    for i in range(messages):
        began = time.perf_counter()
        async with session.post(f"{url}/webhooks/rest/webhook",
                                json={"sender": sender, "message": TEXTS[i % len(TEXTS)]}) as resp:
            await resp.read()
        out.append((time.perf_counter() - began) * 1000)


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--url", default="http://127.0.0.1:8080")
    parser.add_argument("--rasa-url", default="http://127.0.0.1:5005")
    parser.add_argument("--residents", type=int, nargs="+", default=[1, 50])
    parser.add_argument("--messages", type=int, default=4)
    args = parser.parse_args()
    results = {}
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30)) as session:
        for n in args.residents:
            rasa: list[float] = []
            await asyncio.gather(*[rasa_resident(session, args.rasa_url, args.messages, rasa) for _ in range(n)])
            wechat: list[float] = []
            misses: list[str] = []
            await asyncio.gather(*[wechat_resident(session, args.url, args.messages, wechat, misses)
                                   for _ in range(n)])
            r, w = _summary(rasa), _summary(wechat)
            results[f"{n}_residents"] = {"rasa_direct": r, "wechat_push_to_reply": w,
                                         "p99_ratio": round(w["p99_ms"] / r["p99_ms"], 2),
                                         "answered_after_5s_window": len(misses)}
    print(json.dumps(results, indent=2, ensure_ascii=False))
    out = Path(__file__).resolve().parent / "results"
    out.mkdir(exist_ok=True)
    (out / "wechat.json").write_text(json.dumps(results, indent=2, ensure_ascii=False))


if __name__ == "__main__":
    asyncio.run(main())
