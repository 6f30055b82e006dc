"""A fake 12345 platform on 127.0.0.1: it pushes signed orders to the service and receives our messages.

It checks each message's signature (method, path, timestamp and body, with the outbound
secret), de-duplicates by message_id as the real platform would, and can be taken down
(503) or made slow or refusing (4xx). Its pushes are signed with the inbound secret, a
different key. Each accepted message keeps its raw body and headers, as a wire capture would.
"""
from __future__ import annotations

import asyncio
import datetime as dt
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web
from aiohttp.test_utils import TestClient

from hotline.integrations import signing

INBOUND_SECRET = "12345-signs-its-pushes"  # [gov12345] inbound_secret
OUTBOUND_SECRET = "utility-signs-its-messages"  # [gov12345] outbound_secret


@dataclass
class Received:
    kind: str
    body: dict[str, Any]
    at: float
    raw: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)


@dataclass
class FakeGov12345:
    inbound_secret: str = INBOUND_SECRET
    outbound_secret: str = OUTBOUND_SECRET
    up: bool = True
    refuse_with: int | None = None  # answer every message with this status (e.g. 400)
    delay: float = 0.0
    received: list[Received] = field(default_factory=list)  # accepted, once per message_id
    duplicates: int = 0
    bad_signatures: int = 0
    attempts: int = 0
    on_receive: Callable[[Received], None] | None = None
    _runner: web.AppRunner | None = None
    url: str = ""

    async def _message(self, request: web.Request) -> web.Response:
        self.attempts += 1
        if self.delay:
            await asyncio.sleep(self.delay)
        if not self.up:
            return web.json_response({"error": "down"}, status=503)
        body = await request.read()
        if not signing.valid(self.outbound_secret, request.method, request.path,
                             request.headers.get("X-Timestamp", ""), body, request.headers.get("X-Signature", "")):
            self.bad_signatures += 1
            return web.json_response({"error": "signature"}, status=401)
        if self.refuse_with:
            return web.json_response({"error": "refused"}, status=self.refuse_with)
        data = json.loads(body)
        if any(r.body["message_id"] == data["message_id"] for r in self.received):
            self.duplicates += 1
            return web.json_response({"ok": True, "duplicate": True})
        item = Received(request.match_info["kind"], data, asyncio.get_running_loop().time(), body,
                        dict(request.headers))
        self.received.append(item)
        if self.on_receive:
            self.on_receive(item)
        return web.json_response({"ok": True})

    async def start(self) -> FakeGov12345:
        app = web.Application()
        app.router.add_post("/api/{kind}", self._message)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        port = self._runner.addresses[0][1]
        self.url = f"http://127.0.0.1:{port}/api"
        return self

    async def stop(self) -> None:
        if self._runner:
            await self._runner.cleanup()

    def kinds(self, order_no: str | None = None) -> list[str]:
        return [r.kind for r in self.received if order_no is None or r.body.get("order_no") == order_no]

    def signed(self, body: bytes, now: dt.datetime, secret: str | None = None,
               path: str = "/gov12345/orders") -> dict[str, str]:
        """Headers for a push of `body` to `path` (signed with the inbound secret unless told otherwise)."""
        timestamp = str(int(now.timestamp()))
        return {"Content-Type": "application/json", "X-Timestamp": timestamp,
                "X-Signature": signing.signature(secret or self.inbound_secret, "POST", path, timestamp, body)}

    async def push(self, client: TestClient, kind: str, data: dict[str, Any], now: dt.datetime,
                   **kwargs: Any) -> tuple[int, dict[str, Any]]:
        """Push to the service as 12345 does; returns (status, JSON answer)."""
        body = json.dumps(data, ensure_ascii=False).encode()
        headers = self.signed(body, now, kwargs.pop("secret", None), f"/gov12345/{kind}")
        headers.update(kwargs.pop("headers", {}))
        resp = await client.post(f"/gov12345/{kind}", data=body, headers=headers)
        return resp.status, await resp.json()


def order(order_no: str, now: dt.datetime, type_: str = "管道漏水", **overrides: Any) -> dict[str, Any]:
    """A dispatched order as 12345 sends it (Beijing time with its offset)."""
    cst = dt.timezone(dt.timedelta(hours=8))
    data = {"order_no": order_no, "type": type_, "title": "小区路口水管漏水",
            "content": "幸福路12号门口地面冒水，已经流了一上午", "caller": "张女士", "phone": "13800138000",
            "address": "幸福路12号", "accepted_at": now.astimezone(cst).isoformat(),
            "sign_due_at": (now + dt.timedelta(hours=1)).astimezone(cst).isoformat(),
            "due_at": (now + dt.timedelta(days=3)).astimezone(cst).isoformat(), "urgency": "normal",
            "attachments": ["https://12345.example.gov.cn/files/a1.jpg"]}
    data.update(overrides)
    return data
