"""GET /healthz: each component and whether it is up."""
from __future__ import annotations

import asyncio
import inspect
from typing import Any

from aiohttp import web
from sqlalchemy import text

from hotline.api.registry import CTX, json_response


async def healthz(request: web.Request) -> web.Response:
    ctx = request.app[CTX]
    components: dict[str, Any] = {}
    try:
        async with asyncio.timeout(3):
            async with ctx.readers() as session:
                await session.execute(text("SELECT 1"))
        components["database"] = {"up": True, "backend": ctx.engine.dialect.name}
    except Exception as exc:  # report, don't crash the probe
        components["database"] = {"up": False, "backend": ctx.engine.dialect.name, "error": str(exc)[:200]}
    for name, check in ctx.health_checks.items():
        try:
            result = check()
            if inspect.isawaitable(result):
                async with asyncio.timeout(3):
                    result = await result
            components[name] = result
        except Exception as exc:
            components[name] = {"up": False, "error": str(exc)[:200]}
    for name in ("bot", "sip"):
        components.setdefault(name, {"up": False, "detail": "not running in this process"})
    healthy = components["database"]["up"]
    return json_response({"status": "ok" if healthy else "degraded", "components": components},
                         status=200 if healthy else 503)
