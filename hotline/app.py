"""The aiohttp application: API, health, and the background tasks."""
from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator

from aiohttp import web

from hotline.api import auth_views, customers, records, tickets  # noqa: F401  (routes register on import)
from hotline.api.middleware import errors_middleware, guard
from hotline.api.openapi import openapi_view
from hotline.api.registry import CTX, ROUTES
from hotline.context import AppContext
from hotline.departments import sync_departments
from hotline.health import healthz
from hotline.tickets.calendar import warn_about_coverage
from hotline.tickets.escalation import run_scheduler

log = logging.getLogger(__name__)


def create_app(ctx: AppContext) -> web.Application:
    app = web.Application(middlewares=[errors_middleware], client_max_size=2 * 1024 * 1024)
    app[CTX] = ctx
    for spec in ROUTES:
        app.router.add_route(spec.method, spec.path, guard(spec.handler, spec.roles))
    app.router.add_get("/api/openapi.json", openapi_view)
    app.router.add_get("/healthz", healthz)
    app.cleanup_ctx.append(_lifecycle)
    return app


async def _lifecycle(app: web.Application) -> AsyncIterator[None]:
    ctx = app[CTX]
    warn_about_coverage(ctx.router.calendar, ctx.today())
    async with ctx.sessions.begin() as session:
        await sync_departments(session, ctx.router)
    scheduler = None
    if ctx.config.escalation.enabled:
        scheduler = asyncio.create_task(
            run_scheduler(ctx.sessions, ctx.router, ctx.config.escalation.interval_seconds, ctx.clock),
            name="escalation-scheduler")
    yield
    if scheduler is not None:
        scheduler.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await scheduler
    await ctx.engine.dispose()
