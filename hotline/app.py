"""The aiohttp application: API, health, and the background tasks."""
from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
from collections.abc import AsyncIterator

from aiohttp import web

from hotline import reports
from hotline.api import (  # noqa: F401  (routes register on import)
    audit,
    auth_views,
    callbacks,
    canned,
    context,
    conversation_actions,
    customers,
    incidents,
    meta,
    nlu_feedback,
    outbound,
    privacy,
    queue,
    records,
    residents,
    search,
    supervision,
    tickets,
)
from hotline.api import reports as reports_api  # noqa: F401  (routes register on import)
from hotline.api.middleware import errors_middleware, guard
from hotline.api.openapi import openapi_view
from hotline.api.registry import CTX, ROUTES
from hotline.callbacks import links as survey_links
from hotline.callbacks.scheduler import run_scheduler as run_callback_scheduler
from hotline.channels import registry as channels
from hotline.console import views as console
from hotline.context import AppContext
from hotline.conversations import ticket_updates
from hotline.health import healthz, readyz, track_job
from hotline.incidents import notices as incident_notices
from hotline.live import postgres as live_postgres
from hotline.live import stream as live
from hotline.privacy.purge import run_scheduler as run_retention_scheduler
from hotline.public import privacy as privacy_notice
from hotline.rasa.client import RasaClient
from hotline.rasa.processes import BotProcesses
from hotline.tickets.calendar import warn_about_coverage
from hotline.tickets.departments import sync_departments
from hotline.tickets.escalation import run_scheduler

log = logging.getLogger(__name__)


def create_app(ctx: AppContext) -> web.Application:
    app = web.Application(middlewares=[errors_middleware], client_max_size=2 * 1024 * 1024)
    app[CTX] = ctx
    ctx.config.privacy.check()  # a typo in [privacy] stops the start instead of disclosing more
    for spec in ROUTES:
        app.router.add_route(spec.method, spec.path, guard(spec.handler, spec.roles))
    app.router.add_get("/api/openapi.json", openapi_view)
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
    live.setup(app)
    console.setup(app)
    reports.setup(app, ctx)
    privacy_notice.setup(app, ctx)  # /privacy, linked from the IVR welcome, WeChat and the web chat
    for plugin in channels.plugins():
        channel = plugin.setup(app, ctx)
        if channel is not None:
            ctx.channels[plugin.info.name] = channel
    survey_links.setup(app, ctx)
    ticket_updates.subscribe(ctx)
    incident_notices.subscribe(ctx)
    app.cleanup_ctx.append(_lifecycle)
    app.cleanup_ctx.append(_live_fanout)
    app.cleanup_ctx.append(_bot)
    return app


async def _bot(app: web.Application) -> AsyncIterator[None]:
    """Connect to the Rasa server, starting and supervising it (and the action server) when no URL is configured.

    Both servers are closed by tokens only this service (and, for a rasa_url elsewhere, its
    operator) knows: Rasa's API token and the service token the action server requires.
    """
    ctx = app[CTX]
    cfg = ctx.config
    processes: BotProcesses | None = None
    if cfg.bot.enabled:
        if not cfg.api.service_token:
            cfg.api.service_token = secrets.token_urlsafe(32)  # known only to this process and its children
        url, actions = cfg.bot.rasa_url, cfg.bot.actions_url
        # Rasa's API token: configured for a Rasa run elsewhere, else made here for the one we start.
        rasa_token = cfg.bot.rasa_token or ("" if url else secrets.token_urlsafe(32))
        if not url:
            processes = BotProcesses(cfg, cfg.api.service_token, rasa_token)
            try:
                await processes.start()
            except OSError as exc:
                log.error("bot not started: %s", exc)
            url, actions = processes.rasa_url, processes.actions_url
        ctx.bot = RasaClient(url, cfg.bot.timeout_seconds, actions or None, token=rasa_token,
                             actions_token=cfg.api.service_token, processes=processes)
        ctx.health_checks["bot"] = ctx.bot.status
    yield
    if ctx.bot is not None:
        await ctx.bot.close()
    if processes is not None:
        await processes.stop()


async def _live_fanout(app: web.Application) -> AsyncIterator[None]:
    """On PostgreSQL, hear the other service processes' events (LISTEN/NOTIFY)."""
    ctx = app[CTX]
    if ctx.engine.dialect.name != "postgresql":
        yield
        return
    listener = live_postgres.PostgresListener(ctx.config.database_url, ctx.origin, ctx.live)
    task = asyncio.create_task(listener.run(), name="live-events-listener")
    ctx.health_checks["live_events"] = lambda: {"up": listener.connected.is_set()}
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(listener.connected.wait(), 10)
    yield
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task


async def _lifecycle(app: web.Application) -> AsyncIterator[None]:
    ctx = app[CTX]
    warn_about_coverage(ctx.router.calendar, ctx.today())
    async with ctx.sessions.begin() as session:
        await sync_departments(session, ctx.router)
    schedulers = []
    if ctx.config.escalation.enabled:
        runs = track_job(ctx, "escalation")  # sweeps that keep failing: down in /healthz
        schedulers.append(runs.watch(asyncio.create_task(
            run_scheduler(ctx.sessions, ctx.router, ctx.config.escalation.interval_seconds, ctx.clock, runs),
            name="escalation-scheduler")))
    if ctx.config.callback.enabled:
        runs = track_job(ctx, "callbacks")
        schedulers.append(runs.watch(asyncio.create_task(run_callback_scheduler(ctx, runs),
                                                         name="callback-scheduler")))
    if ctx.config.retention.enabled:
        runs = track_job(ctx, "retention")  # the daily purge: down after three failed runs in a row
        schedulers.append(runs.watch(asyncio.create_task(run_retention_scheduler(ctx, runs), name="retention-purge")))
    yield
    for scheduler in schedulers:
        scheduler.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await scheduler
    await ctx.engine.dispose()
