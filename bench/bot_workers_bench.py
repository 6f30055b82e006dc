"""WeChat push → reply with 1, 2 … Rasa workers (run by hand): does a second Rasa server help on this machine?

For each worker count it starts a fresh service (`run_hotline.py serve`, PostgreSQL database of its
own, Redis for several workers, WeChat in safe mode, the customer-service API faked on 127.0.0.1),
waits until every worker has proved itself, warms each worker up, then lets N residents push M
messages each at once, every resident waiting for the answer before the next message, as a person
does. Measured per push: the time until the reply is in the resident's hands, either as the passive
reply in the HTTP answer (within WeChat's window: 4 s) or through the customer-service API after it
(a miss); and the HTTP answer itself, which WeChat needs within 5 s.

    .venv/bin/python bench/bot_workers_bench.py --workers 1 2 --residents 50 --messages 4
"""
from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import os
import signal
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path

import aiohttp
from sqlalchemy.engine import make_url

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from bench.fake_wechat import FakeWeChat, serving
from tests import wechat_client as wx
from tests.service_process import (
    ServiceProcess,
    consecutive_free_ports,
    drop_postgres_database,
    fresh_postgres_database,
)

TEXTS = ["你好", "怎么办理过户", "营业厅几点上班", "谢谢"]  # as bench/wechat_bench.py
RASA_TOKEN = "bench-rasa-token"
MSG_IDS = itertools.count(int(time.time() * 1000) * 1000)


TICK = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pids: list[int]) -> float:
    """User + system CPU time the processes have used so far."""
    total = 0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += int(fields[11]) + int(fields[12])
    return total / TICK


def named(name: str) -> list[int]:
    pids = []
    for proc in Path("/proc").iterdir():
        try:
            if proc.name.isdigit() and (proc / "comm").read_text().strip().startswith(name):
                pids.append(int(proc.name))
        except OSError:
            pass
    return pids


def machine_busy() -> float:
    """CPU seconds the whole machine has been busy (all cores), from /proc/stat."""
    cols = [int(c) for c in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    return (sum(cols) - cols[3] - cols[4]) / TICK


def summary(values: list[float]) -> dict[str, float]:
    values = sorted(values)
    return {"n": len(values), "p50_ms": round(statistics.median(values), 1),
            "p99_ms": round(values[min(len(values) - 1, int(len(values) * 0.99))], 1),
            "max_ms": round(values[-1], 1)}


async def resident(http: aiohttp.ClientSession, url: str, api: FakeWeChat, messages: int,
                   replies: list[float], answers: list[float], misses: list[str]) -> None:
    openid = "bench-" + uuid.uuid4().hex[:16]
    late = api.queue(openid)
    for i in range(messages):
        # MsgIds unique across residents: the service drops a repeated one as WeChat's retry.
        query, body = wx.push(wx.message("text", openid, next(MSG_IDS), Content=TEXTS[i % len(TEXTS)]), "aes")
        began = time.perf_counter()
        async with http.post(f"{url}/wechat", params=query, data=body.encode()) as resp:
            text = await resp.text()
        answered = time.perf_counter()
        answers.append((answered - began) * 1000)
        if wx.reply_text(text):
            replies.append((answered - began) * 1000)
            continue
        misses.append(openid)
        at = await asyncio.wait_for(late.get(), timeout=60)  # the resident reads the late reply first
        replies.append((at - began) * 1000)


async def warm_up(http: aiohttp.ClientSession, ports: list[int]) -> None:
    """Each worker's first requests build TensorFlow's graphs; residents should not pay for that here."""
    for port in ports:
        for text in TEXTS * 3:
            async with http.post(f"http://127.0.0.1:{port}/webhooks/rest/webhook", params={"token": RASA_TOKEN},
                                 json={"sender": "warm-up-" + uuid.uuid4().hex[:8], "message": text}) as resp:
                await resp.read()


async def run_one(workers: int, args: argparse.Namespace, api_url: str, api: FakeWeChat) -> dict[str, object]:
    database_url = make_url(args.database_url).set(database=f"hotline_bench_workers_{workers}")
    url = database_url.render_as_string(hide_password=False)
    await fresh_postgres_database(url)
    var = Path(tempfile.mkdtemp(prefix=f"bot-workers-bench-{workers}-"))
    rasa_port = consecutive_free_ports(workers)
    env = {"HOTLINE_DATABASE_URL": url, "HOTLINE_BOT_WORKERS": str(workers), "HOTLINE_BOT_RASA_TOKEN": RASA_TOKEN,
           "HOTLINE_BOT_RASA_PORT": str(rasa_port), "HOTLINE_BOT_CONCURRENCY": str(args.concurrency),
           "HOTLINE_WECHAT_TOKEN": wx.TOKEN, "HOTLINE_WECHAT_APP_ID": wx.APP_ID, "HOTLINE_WECHAT_APP_SECRET": "x",
           "HOTLINE_WECHAT_ENCODING_AES_KEY": wx.AES_KEY, "HOTLINE_WECHAT_API_BASE_URL": api_url}
    if workers > 1:
        env["HOTLINE_BOT_REDIS_URL"] = args.redis_url
    env.update(item.split("=", 1) for item in args.env)  # e.g. TF_INTRA_OP_PARALLELISM_THREADS=1, to try
    svc = ServiceProcess(var, "bench-token", bot=True, seed_accounts=30, env=env)
    svc.rasa = rasa_port
    await asyncio.to_thread(svc.start)
    try:
        deadline = time.monotonic() + 300
        while (await asyncio.to_thread(svc.api, "/healthz"))["components"]["bot"].get("workers_up", 1) < workers:
            assert time.monotonic() < deadline, "the workers did not come up"
            await asyncio.sleep(1)
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=90)) as http:
            await warm_up(http, [rasa_port + i for i in range(workers)])
            load_before = os.getloadavg()[0]
            health = (await asyncio.to_thread(svc.api, "/healthz"))["components"]["bot"]
            assert svc.proc is not None
            ours = {"service": [svc.proc.pid], "rasa_workers": [w["pid"] for w in health["workers"]],
                    "action_server": [health["pids"]["actions"]], "postgres_all_clients": named("postgres"),
                    "redis": named("redis-server")}
            cpu_before = {k: cpu_seconds(v) for k, v in ours.items()}
            busy_before = machine_busy()
            replies: list[float] = []
            answers: list[float] = []
            misses: list[str] = []
            began = time.perf_counter()
            await asyncio.gather(*(resident(http, svc.url, api, args.messages, replies, answers, misses)
                                   for _ in range(args.residents)))
            seconds = time.perf_counter() - began
            cpu = {k: round(cpu_seconds(v) - cpu_before[k], 2) for k, v in ours.items()}
            busy = machine_busy() - busy_before
        bot = (await asyncio.to_thread(svc.api, "/healthz"))["components"]["bot"]
        return {"workers": workers, "residents": args.residents, "pushes": len(answers),
                "seconds": round(seconds, 1), "pushes_per_s": round(len(answers) / seconds, 1),
                "push_to_reply": summary(replies), "http_answer": summary(answers),
                "missed_passive_window": len(misses), "load_1min_before": round(load_before, 2),
                "load_1min_after": round(os.getloadavg()[0], 2),
                "cpu_seconds": cpu, "cpu_ms_per_push": round(sum(cpu.values()) * 1000 / len(answers), 1),
                "machine_busy_cores": round(busy / seconds, 2),
                "other_work_cores": round((busy - sum(cpu.values())) / seconds, 2),
                "failovers": bot.get("failovers", 0),
                "bot_queue": bot.get("queue")}
    finally:
        await asyncio.to_thread(svc.stop)
        if svc.proc is not None and svc.proc.poll() is None:
            os.kill(svc.proc.pid, signal.SIGKILL)
        await drop_postgres_database(url)


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--residents", type=int, default=50)
    parser.add_argument("--messages", type=int, default=4)
    parser.add_argument("--concurrency", type=int, default=8, help="[bot] concurrency: requests to Rasa at once")
    parser.add_argument("--database-url", default="postgresql://postgres@127.0.0.1:5432/test",
                        help="the server to use; each run gets a fresh database of its own on it")
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379/1")
    parser.add_argument("--env", nargs="*", default=[], metavar="KEY=VALUE",
                        help="more environment for the service and the servers it starts")
    parser.add_argument("--out", default="bot_workers.json", help="file name under bench/results/")
    args = parser.parse_args()
    api = FakeWeChat()
    results = []
    async with serving(api) as api_url:
        for workers in args.workers:
            result = await run_one(workers, args, api_url, api)
            result["env"] = args.env
            print(json.dumps(result, ensure_ascii=False), flush=True)
            results.append(result)
    out = Path(__file__).resolve().parent / "results"
    out.mkdir(exist_ok=True)
    (out / args.out).write_text(json.dumps(results, indent=2, ensure_ascii=False))


if __name__ == "__main__":
    asyncio.run(main())
