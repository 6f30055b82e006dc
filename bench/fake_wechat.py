"""A fake WeChat API on 127.0.0.1 for benchmarks: answers each customer-service message after 5 ms
(a quick real one) and counts what it was sent, to whom and how many at once."""
from __future__ import annotations

import asyncio
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
        self.in_flight -= 1
        return web.json_response({"errcode": 0, "errmsg": "ok"})


@asynccontextmanager
async def fake_wechat(ctx: AppContext) -> AsyncIterator[FakeWeChat]:
    """The fake API running, and `ctx`'s WeChat channel pointed at it."""
    fake = FakeWeChat()
    app = web.Application()
    app.router.add_get("/cgi-bin/token", fake.token)
    app.router.add_post("/cgi-bin/message/custom/send", fake.send)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    api = WeChatApi(f"http://127.0.0.1:{port}", "wxbench", "secret")
    ctx.channels["wechat"] = WeChatChannel(api, templates={})
    try:
        yield fake
    finally:
        await api.close()
        await runner.cleanup()
