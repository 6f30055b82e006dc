"""Sending to 12345: POST {base_url}/{path} with our message as JSON, signed like its pushes to us
(method, path, timestamp and body) but with our own key, [gov12345] outbound_secret."""
from __future__ import annotations

import json
import time
from collections.abc import Callable
from urllib.parse import urlsplit

import aiohttp

from hotline.integrations import signing
from hotline.integrations.gov12345.mapping import Mapping
from hotline.integrations.outbox import Outgoing, Result

RETRYABLE_4XX = (408, 425, 429)  # the platform asks us to come back later


class Gov12345Transport:
    def __init__(self, base_url: str, secret: str, mapping: Mapping, timeout: float = 10.0,
                 clock: Callable[[], float] = time.time) -> None:
        self.base_url, self.secret, self.mapping, self.clock = base_url.rstrip("/"), secret, mapping, clock
        self.timeout = aiohttp.ClientTimeout(total=timeout)
        self._session: aiohttp.ClientSession | None = None

    def body(self, message: Outgoing) -> bytes:
        data = self.mapping.rename_outbound({"message_id": message.message_id, **message.payload})
        return json.dumps(data, ensure_ascii=False, separators=(",", ":")).encode()

    async def send(self, message: Outgoing) -> Result:
        if not self.base_url or not self.secret:
            return Result(False, "[gov12345] base_url or outbound_secret is not set")
        if self._session is None:
            self._session = aiohttp.ClientSession(timeout=self.timeout)
        body = self.body(message)
        timestamp = str(int(self.clock()))
        url = f"{self.base_url}/{self.mapping.path(message.kind)}"
        headers = {"Content-Type": "application/json; charset=utf-8", "X-Timestamp": timestamp,
                   "X-Signature": signing.signature(self.secret, "POST", urlsplit(url).path, timestamp, body),
                   "X-Message-Id": message.message_id}
        try:
            async with self._session.post(url, data=body, headers=headers) as resp:
                text = (await resp.text())[:500]
                if 200 <= resp.status < 300:
                    return Result(True)
                error = f"HTTP {resp.status}: {text}"
                return Result(False, error, permanent=400 <= resp.status < 500 and resp.status not in RETRYABLE_4XX)
        except (TimeoutError, aiohttp.ClientError, OSError) as exc:
            return Result(False, f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__)

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None
