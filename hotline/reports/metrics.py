"""GET /metrics: the service in the Prometheus text format, for this process only.

Where the numbers come from, so no other component needs a counter sprinkled into it:
- HTTP requests and latency: a middleware, labelled by route template (never the raw path).
- tickets created (by channel and category), escalations, WeChat pushes, delivery failures, the
  bot's reply latency and WeChat's passive-window misses: this process's committed changes on
  ctx.bus. A created ticket's event carries its id; channel and category are looked up for the
  ids heard since the last scrape, in one query at scrape time.
- open tickets overdue by department, conversations by status, the waiting queue: SQL at scrape
  time, reused for [metrics] sql_max_age_seconds so frequent scrapes stay cheap.
- the bot queue, SIP (ctx.health_checks["sip"]), background jobs (every health check that is a
  hotline.health.JobRuns), calls by outcome and the database pool: read at scrape time by a
  custom collector.

On PostgreSQL with several service processes each process answers for itself (its own HTTP
requests, bus and SIP socket); the SQL gauges are the same store seen from each, so sum only the
counters and take max() of the gauges in PromQL (the Grafana dashboard does).
"""
from __future__ import annotations

import asyncio
import hmac
import inspect
import ipaddress
import time
from collections.abc import Iterator
from typing import Any

from aiohttp import web
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.exposition import CONTENT_TYPE_LATEST, generate_latest
from prometheus_client.registry import Collector
from sqlalchemy import func, select

from hotline.api import client_address
from hotline.channels.wechat.views import PASSIVE_WINDOW
from hotline.context import AppContext
from hotline.events import Event
from hotline.health import JobRuns
from models import Call, Conversation, Department, Ticket
from models.ticket import OPEN_STATUSES

LATENCY_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1, 2, 4.5, 10, 30, 60)
PENDING_LIMIT = 10_000  # created-ticket ids awaiting their labels; beyond it they are counted as unknown


class Metrics:
    """One per application (tests build many), with its own registry."""

    def __init__(self, ctx: AppContext) -> None:
        self.ctx = ctx
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.started = time.time()
        self.started_at = ctx.clock()
        self.http_requests = Counter("hotline_http_requests", "HTTP requests by route template and status",
                                     ["method", "route", "status"], registry=r)
        self.http_latency = Histogram("hotline_http_request_duration_seconds", "HTTP request latency by route template",
                                      ["method", "route"], registry=r)
        self.tickets_created = Counter("hotline_tickets_created", "Tickets created by this process",
                                       ["channel", "category"], registry=r)
        self.escalations = Counter("hotline_escalations", "Escalation steps recorded (督办), by step",
                                   ["step"], registry=r)
        self.wechat_pushes = Counter("hotline_wechat_pushes", "Residents' WeChat messages stored", registry=r)
        self.passive_misses = Counter("hotline_wechat_passive_window_misses",
                                      "WeChat pushes whose first answer came after the passive reply window",
                                      registry=r)
        self.delivery_failures = Counter("hotline_delivery_failures", "Messages a channel failed to deliver",
                                         ["channel"], registry=r)
        self.resident_refusals = Counter("hotline_resident_refusals", "Residents refused for asking too often: "
                                         "lookups (different accounts while unverified), proofs (wrong proofs), "
                                         "webchat_messages, webchat_connections", ["channel", "reason"], registry=r)
        self.bot_latency = Histogram("hotline_bot_reply_seconds",
                                     "From a resident's message to the bot's first reply (queue included)",
                                     buckets=LATENCY_BUCKETS, registry=r)
        self.overdue = Gauge("hotline_tickets_open_overdue", "Open tickets past their resolution due time",
                             ["department"], registry=r)
        self.conversations = Gauge("hotline_conversations", "Open conversations by status", ["status"], registry=r)
        self.queue_length = Gauge("hotline_queue_waiting", "Conversations waiting for a person", registry=r)
        self.queue_oldest = Gauge("hotline_queue_oldest_wait_seconds", "How long the longest-waiting resident "
                                  "has waited", registry=r)
        self.retention_rows = Counter("hotline_retention_purged_rows", "Rows (and files) the retention purge "
                                      "deleted or anonymized, by pass", ["kind"], registry=r)
        self._pending_tickets: list[int] = []
        self._asked: dict[int, float] = {}  # conversation id -> when the resident's bot-bound message was stored
        self._pushes: dict[int, float] = {}  # wechat conversation id -> when the push was stored
        self._sql_at = 0.0
        self._sql_lock = asyncio.Lock()
        self.components: dict[str, dict[str, Any]] = {}
        self.calls: dict[str, int] = {}
        r.register(_LiveCollector(self))  # last: registering runs collect() once

    # --- the bus ------------------------------------------------------------------------------------

    def on_event(self, evt: Event) -> None:
        """Called on the loop for each committed change of this process; must not block."""
        kind = evt.get("type")
        if kind == "ticket.changed" and evt.get("action") == "create" and evt.get("ticket_id"):
            if len(self._pending_tickets) < PENDING_LIMIT:
                self._pending_tickets.append(int(evt["ticket_id"]))
            else:
                self.tickets_created.labels("unknown", "unknown").inc()
        elif kind == "notification" and evt.get("kind"):
            self.escalations.labels(str(evt["kind"])).inc()
        elif kind == "conversation.delivery_failed":
            self.delivery_failures.labels(str(evt.get("channel", ""))).inc()
        elif kind == "conversation.message":
            self._message(evt)
        elif kind == "retention.purged":
            self.retention_rows.labels(str(evt.get("kind", ""))).inc(int(evt.get("rows") or 0))
        elif kind == "resident.refused":
            self.resident_refusals.labels(str(evt.get("channel", "")), str(evt.get("reason", ""))).inc()

    def _message(self, evt: Event) -> None:
        msg = evt.get("message") or {}
        conv, now = evt.get("conversation_id"), time.monotonic()
        if not isinstance(conv, int):
            return
        if msg.get("direction") == "in" and msg.get("sender_kind") == "resident":
            if evt.get("channel") == "wechat":
                self.wechat_pushes.inc()
                self._pushes[conv] = now
            if evt.get("status") == "bot":
                self._asked[conv] = now
        elif msg.get("direction") == "out":
            pushed = self._pushes.pop(conv, None)
            if pushed is not None and now - pushed > PASSIVE_WINDOW:
                self.passive_misses.inc()
            if msg.get("sender_kind") == "bot":
                asked = self._asked.pop(conv, None)
                if asked is not None:
                    self.bot_latency.observe(now - asked)
        if len(self._asked) > 50_000 or len(self._pushes) > 50_000:  # residents who were never answered
            self._asked.clear()
            self._pushes.clear()

    # --- scrape time --------------------------------------------------------------------------------

    async def refresh(self) -> None:
        """What the scrape needs from the store and from components that answer asynchronously."""
        await self._label_created_tickets()
        for name, check in list(self.ctx.health_checks.items()):
            if name != "sip":
                continue
            result = check()
            if inspect.isawaitable(result):
                result = await result
            self.components[name] = result if isinstance(result, dict) else {}
        async with self._sql_lock:
            if time.monotonic() - self._sql_at < self.ctx.config.metrics.sql_max_age_seconds:
                return
            await self._sql_gauges()
            self._sql_at = time.monotonic()

    async def _label_created_tickets(self) -> None:
        ids, self._pending_tickets = self._pending_tickets, []
        if not ids:
            return
        async with self.ctx.readers() as session:
            rows = (await session.execute(select(Ticket.channel, Ticket.category, func.count())
                                          .where(Ticket.id.in_(ids)).group_by(Ticket.channel, Ticket.category))).all()
        for channel, category, n in rows:
            self.tickets_created.labels(channel, category).inc(n)

    async def _sql_gauges(self) -> None:
        now = self.ctx.clock()
        async with self.ctx.readers() as session:
            depts = dict((await session.execute(select(Department.id, Department.code))).all())
            overdue = dict((await session.execute(select(Ticket.department_id, func.count()).where(
                Ticket.status.in_(OPEN_STATUSES), Ticket.resolution_due_at < now)
                .group_by(Ticket.department_id))).all())
            statuses = dict((await session.execute(select(Conversation.status, func.count()).where(
                Conversation.status.in_(("bot", "waiting", "agent"))).group_by(Conversation.status))).all())
            oldest = (await session.execute(select(func.min(Conversation.waiting_since)).where(
                Conversation.status == "waiting"))).scalar_one_or_none()
            calls = {}
            if "sip" in self.ctx.health_checks:  # the process running the IVR answers for its calls
                calls = dict((await session.execute(select(Call.outcome, func.count()).where(
                    Call.started_at >= self.started_at).group_by(Call.outcome))).all())
        for dept_id, code in depts.items():
            self.overdue.labels(code).set(overdue.get(dept_id, 0))
        for status in ("bot", "waiting", "agent"):
            self.conversations.labels(status).set(statuses.get(status, 0))
        self.queue_length.set(statuses.get("waiting", 0))
        self.queue_oldest.set(max((now - oldest).total_seconds(), 0) if oldest else 0)
        self.calls = {str(k or "in_progress"): int(v) for k, v in calls.items()}

    def render(self) -> bytes:
        return generate_latest(self.registry)


class _LiveCollector(Collector):
    """Numbers that live inside components, read when Prometheus scrapes."""

    def __init__(self, metrics: Metrics) -> None:
        self.m = metrics

    def collect(self) -> Iterator[Metric]:
        ctx = self.m.ctx
        q = ctx.bot_queue
        for name, value, doc in (("answered", q.answered, "Bot requests answered"),
                                 ("failed", q.failed, "Bot requests failed or past the long limit"),
                                 ("overflowed", q.overflowed, "Messages that met a full bot queue")):
            yield CounterMetricFamily(f"hotline_bot_{name}", doc, value=value)
        yield GaugeMetricFamily("hotline_bot_in_flight", "Requests at the bot now", value=q.in_flight)
        yield GaugeMetricFamily("hotline_bot_queue_waiting", "Messages waiting for the bot", value=q.waiting)
        sip = self.m.components.get("sip")
        if sip:
            yield GaugeMetricFamily("hotline_sip_up", "SIP socket bound and media clock ticking",
                                    value=1 if sip.get("up") else 0)
            yield GaugeMetricFamily("hotline_sip_calls_in_progress", "SIP calls in progress",
                                    value=sip.get("active_calls", 0))
            for key, doc in (("calls_total", "SIP calls accepted"), ("late_media_ticks", "Late RTP packet ticks"),
                             ("refused", "SIP requests refused (403)"), ("busy", "INVITEs refused as busy (486)"),
                             ("invalid", "Invalid SIP datagrams"), ("media_failures", "Calls whose media failed")):
                name = key[:-len("_total")] if key.endswith("_total") else key
                yield CounterMetricFamily(f"hotline_sip_{name}", doc, value=sip.get(key, 0))
            calls = CounterMetricFamily("hotline_calls", "IVR calls started since this process started, by outcome",
                                        labels=["outcome"])
            for outcome, n in sorted(self.m.calls.items()):
                calls.add_metric([outcome], n)
            yield calls
        jobs = [(name, check) for name, check in list(ctx.health_checks.items()) if isinstance(check, JobRuns)]
        if jobs:
            up = GaugeMetricFamily("hotline_job_up", "Background job (scheduler, worker) not failing run after run",
                                   labels=["job"])
            failed = CounterMetricFamily("hotline_job_failed_runs", "Background job runs that failed",
                                         labels=["job"])
            for name, runs in jobs:
                up.add_metric([name], 1 if runs.up else 0)
                failed.add_metric([name], runs.failures)
            yield up
            yield failed
        pool = ctx.engine.pool
        checked_out = getattr(pool, "checkedout", None)
        if callable(checked_out):
            yield GaugeMetricFamily("hotline_db_pool_in_use", "Database connections checked out",
                                    value=checked_out())
        yield GaugeMetricFamily("hotline_process_start_time_seconds", "When this service process started",
                                value=self.m.started)


METRICS = web.AppKey("metrics", Metrics)


def _networks(text: str) -> list[ipaddress.IPv4Network | ipaddress.IPv6Network]:
    return [ipaddress.ip_network(part.strip(), strict=False) for part in text.split(",") if part.strip()]


FORWARDING_HEADERS = ("X-Forwarded-For", "Forwarded", "X-Real-IP")


def allowed(request: web.Request, ctx: AppContext) -> bool:
    """The bearer token, or the client's real address in [metrics] allowed.

    The address is the peer's, or behind a proxy listed in [http] trusted_proxies the
    one it forwards for. A request that shows a proxy we do not trust (forwarding
    headers from a peer not listed) is refused: its peer (often 127.0.0.1, a proxy on
    this host) is not the client, and the headers are anyone's to write.
    """
    cfg = ctx.config.metrics
    header = request.headers.get("Authorization", "")
    if cfg.token and header:
        scheme, _, token = header.partition(" ")
        return scheme.lower() == "bearer" and hmac.compare_digest(
            token.strip().encode("utf-8", "surrogateescape"), cfg.token.encode("utf-8", "surrogateescape"))
    trusted = ctx.config.http.trusted_proxies
    address, known = client_address.resolve(request, trusted)
    if not known:
        return False
    if not client_address.within(request.remote or "", trusted) and any(
            name in request.headers for name in FORWARDING_HEADERS):
        return False
    try:
        remote = ipaddress.ip_address(address.split("%")[0])
    except ValueError:
        return False
    if isinstance(remote, ipaddress.IPv6Address) and remote.ipv4_mapped is not None:
        remote = remote.ipv4_mapped
    return any(remote in net for net in _networks(cfg.allowed))


def route_template(request: web.Request) -> str:
    """The route's template (/api/tickets/{number}), never the raw path: one series per route, not per ticket."""
    info = request.match_info
    route = info.route if info is not None else None
    resource = route.resource if route is not None else None
    if resource is None:
        return "unmatched"
    return resource.canonical


@web.middleware
async def http_metrics(request: web.Request, handler: Any) -> web.StreamResponse:
    metrics = request.app.get(METRICS)
    began = time.perf_counter()
    status = 500
    try:
        response = await handler(request)
        status = response.status
        return response
    except web.HTTPException as exc:
        status = exc.status
        raise
    finally:
        if metrics is not None:
            template = route_template(request)
            metrics.http_requests.labels(request.method, template, str(status)).inc()
            metrics.http_latency.labels(request.method, template).observe(time.perf_counter() - began)


async def metrics_view(request: web.Request) -> web.Response:
    metrics = request.app[METRICS]
    if not allowed(request, metrics.ctx):
        raise web.HTTPForbidden(text="metrics: not from an allowed address and no valid token\n")
    await metrics.refresh()
    return web.Response(body=metrics.render(), headers={"Content-Type": CONTENT_TYPE_LATEST,
                                                        "Cache-Control": "no-store"})


def _validate(ctx: AppContext) -> None:
    _networks(ctx.config.metrics.allowed)  # a typo stops the start instead of silently refusing
    client_address.networks(ctx.config.http.trusted_proxies)


def setup(app: web.Application, ctx: AppContext) -> None:
    if not ctx.config.metrics.enabled:
        return
    _validate(ctx)
    metrics = Metrics(ctx)
    app[METRICS] = metrics
    unsubscribe = ctx.bus.subscribe(metrics.on_event)

    async def detach(_app: web.Application) -> None:
        unsubscribe()

    app.on_cleanup.append(detach)
    app.middlewares.insert(0, http_metrics)  # outermost: it sees the status the errors middleware made
    app.router.add_get("/metrics", metrics_view)
