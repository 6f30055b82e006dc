"""WeChat's HTTP API, async (wechatpy's client uses blocking requests and hard-codes api.weixin.qq.com).

Every call goes to [wechat] api_base_url. One access token is cached and
refreshed five minutes before it expires; a call that fails with an expired or
invalid token (40001, 40014, 42001) fetches a new one and is retried once.
"""
from __future__ import annotations

import asyncio
import time
from typing import Any

import aiohttp

TOKEN_ERRORS = {40001, 40014, 42001}
ERROR_TEXT = {45015: "超过48小时回复时限，无法再主动发消息给该用户",
              45047: "客服消息已达条数上限（5条），请等居民再次发消息",
              48001: "公众号没有客服消息接口权限"}


class WeChatApiError(Exception):
    def __init__(self, code: int, message: str) -> None:
        super().__init__(f"{code}: {message}")
        self.code, self.message = code, message


class WeChatApi:
    def __init__(self, base_url: str, app_id: str, app_secret: str, timeout: float = 5.0) -> None:
        self.base_url = base_url.rstrip("/")
        self.app_id, self.app_secret = app_id, app_secret
        self.timeout = aiohttp.ClientTimeout(total=timeout)
        self._token: str | None = None
        self._expires = 0.0
        self._lock = asyncio.Lock()
        self._session: aiohttp.ClientSession | None = None

    def _http(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(timeout=self.timeout)
        return self._session

    async def access_token(self, force: bool = False) -> str:
        async with self._lock:
            if force or not self._token or time.monotonic() > self._expires - 300:
                async with self._http().get(f"{self.base_url}/cgi-bin/token", params={
                        "grant_type": "client_credential", "appid": self.app_id, "secret": self.app_secret}) as resp:
                    data = await resp.json(content_type=None)
                if "access_token" not in data:
                    raise WeChatApiError(int(data.get("errcode", -1)), data.get("errmsg", "no access_token"))
                self._token = data["access_token"]
                self._expires = time.monotonic() + int(data.get("expires_in", 7200))
            return self._token

    async def post(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        for attempt in (1, 2):
            token = await self.access_token(force=attempt == 2)
            async with self._http().post(f"{self.base_url}{path}", params={"access_token": token},
                                         json=body) as resp:
                data = await resp.json(content_type=None)
            code = int(data.get("errcode", 0))
            if code in TOKEN_ERRORS and attempt == 1:
                continue
            if code:
                raise WeChatApiError(code, ERROR_TEXT.get(code, data.get("errmsg", "")))
            return data
        raise AssertionError("unreachable")

    async def send_text(self, openid: str, text: str) -> None:
        await self.post("/cgi-bin/message/custom/send",
                        {"touser": openid, "msgtype": "text", "text": {"content": text}})

    async def send_template(self, openid: str, template_id: str, url: str, fields: dict[str, str]) -> None:
        """A template message (模板消息): allowed outside the 48-hour window, for the templates granted."""
        await self.post("/cgi-bin/message/template/send", {
            "touser": openid, "template_id": template_id, "url": url,
            "data": {name: {"value": value} for name, value in fields.items()}})

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
