"""A fake WeChat API on 127.0.0.1 for benchmarks: answers each customer-service message after 5 ms
(a quick real one), counts what it was sent, to whom and how many at once, and notes when each
resident got a message (for benchmarks that time late replies)."""
from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from aiohttp import web

from hotline.channels.wechat.api import WeChatApi
from hotline.channels.wechat.channel import WeChatChannel
from hotline.context import AppContext


class FakeWeChat:
    def __init__(self) -> None:
        self.to: Counter[str] = Counter()
        self.in_flight = self.most_in_flight = 0
        self.received: dict[str, asyncio.Queue[float]] = {}  # per resident: perf_counter() of each message

    def queue(self, openid: str) -> asyncio.Queue[float]:
        return self.received.setdefault(openid, asyncio.Queue())

    @property
    def sent(self) -> int:
        return sum(self.to.values())

    async def token(self, _: web.Request) -> web.Response:
        return web.json_response({"access_token": "T", "expires_in": 7200})

    async def send(self, request: web.Request) -> web.Response:
        self.in_flight += 1
        self.most_in_flight = max(self.most_in_flight, self.in_flight)
        body = await request.json()
        await asyncio.sleep(0.005)
        self.to[body["touser"]] += 1
        self.queue(body["touser"]).put_nowait(time.perf_counter())
        self.in_flight -= 1
        return web.json_response({"errcode": 0, "errmsg": "ok"})


@asynccontextmanager
async def serving(fake: FakeWeChat) -> AsyncIterator[str]:
    """The fake API listening on 127.0.0.1; yields its base URL."""
    app = web.Application()
    app.router.add_get("/cgi-bin/token", fake.token)
    app.router.add_post("/cgi-bin/message/custom/send", fake.send)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    try:
        yield f"http://127.0.0.1:{site._server.sockets[0].getsockname()[1]}"  # type: ignore[union-attr]
    finally:
        await runner.cleanup()


@asynccontextmanager
async def fake_wechat(ctx: AppContext) -> AsyncIterator[FakeWeChat]:
    """The fake API running, and `ctx`'s WeChat channel pointed at it."""
    fake = FakeWeChat()
    async with serving(fake) as url:
        api = WeChatApi(url, "wxbench", "secret")
        ctx.channels["wechat"] = WeChatChannel(api, templates={})
        try:
            yield fake
        finally:
            await api.close()
