"""GET /healthz (liveness) and GET /readyz (readiness): each component and whether it is up.

/healthz answers 200 while the process serves, so an orchestrator does not
restart a service whose bot is merely restarting; its `status` is `degraded`
when an enabled component is down. /readyz answers 503 until every enabled
component is up, so a load balancer sends residents only to an instance that
can serve them.
"""
from __future__ import annotations

import asyncio
import inspect
from typing import Any

from aiohttp import web
from sqlalchemy import text

from hotline.api.registry import CTX, json_response
from hotline.context import AppContext

CHECK_SECONDS = 3.0


def _enabled(ctx: AppContext) -> dict[str, bool]:
    """Components the configuration asks for; a disabled one is reported but never makes the service unready."""
    return {"database": True, "bot": ctx.config.bot.enabled, "sip": ctx.config.sip.enabled}


async def _database(ctx: AppContext) -> dict[str, Any]:
    try:
        async with asyncio.timeout(CHECK_SECONDS):
            async with ctx.readers() as session:
                await session.execute(text("SELECT 1"))
        return {"up": True, "backend": ctx.engine.dialect.name}
    except Exception as exc:  # report, don't crash the probe
        return {"up": False, "backend": ctx.engine.dialect.name, "error": str(exc)[:200]}


async def _component(check: Any) -> dict[str, Any]:
    try:
        result = check()
        if inspect.isawaitable(result):
            async with asyncio.timeout(CHECK_SECONDS):
                result = await result
        return dict(result)
    except Exception as exc:
        return {"up": False, "error": str(exc)[:200] or type(exc).__name__}


async def components(ctx: AppContext) -> dict[str, dict[str, Any]]:
    """Every component's state, checked now; each names whether the configuration enables it."""
    names = list(ctx.health_checks)
    results = await asyncio.gather(_database(ctx), *(_component(ctx.health_checks[n]) for n in names))
    found: dict[str, dict[str, Any]] = {"database": results[0], **dict(zip(names, results[1:], strict=True))}
    enabled = _enabled(ctx)
    for name in ("bot", "sip"):
        if name not in found:
            found[name] = {"up": False, "detail": "not running in this process" if enabled[name] else "disabled"}
    found["bot"]["queue"] = ctx.bot_queue.status()
    for name, state in found.items():
        state["enabled"] = enabled.get(name, True)
        state["up"] = bool(state.get("up"))
    return found


def _down(found: dict[str, dict[str, Any]]) -> list[str]:
    return sorted(name for name, state in found.items() if state["enabled"] and not state["up"])


async def healthz(request: web.Request) -> web.Response:
    found = await components(request.app[CTX])
    down = _down(found)
    return json_response({"status": "degraded" if down else "ok", "down": down, "components": found})


async def readyz(request: web.Request) -> web.Response:
    found = await components(request.app[CTX])
    down = _down(found)
    return json_response({"ready": not down, "down": down, "components": found}, status=503 if down else 200)
