"""GET /healthz (liveness) and GET /readyz (readiness): each component and whether it is up.

/healthz answers 200 while the process serves, so an orchestrator does not
restart a service whose bot is merely restarting; its `status` is `degraded`
when an enabled component is down. /readyz answers 503 until every enabled
component is up, so a load balancer sends residents only to an instance that
can serve them.

Background jobs (schedulers, workers) report through a `JobRuns`: one failed run (a database
hiccup) is retried quietly, but a job whose runs keep failing is down, here and in /metrics,
rather than a service that looks healthy while nothing it should do gets done.
"""
from __future__ import annotations

import asyncio
import inspect
import logging
import time
from types import TracebackType
from typing import Any

from aiohttp import web
from sqlalchemy import text

from hotline.api.registry import CTX, json_response
from hotline.context import AppContext

CHECK_SECONDS = 3.0
DOWN_AFTER_FAILURES = 3  # runs in a row that failed before a job is reported down


class JobRuns:
    """How a background job's runs are going, and its health check (`ctx.health_checks[name] = runs`).

    Each run goes inside `with runs.attempt():`, which records its success or failure, logs a failure
    and keeps it from ending the job's loop. The job is down once `down_after` runs in a row have
    failed, or when its task (given to `watch`) has ended; the next successful run brings it back up.
    """

    def __init__(self, name: str, down_after: int = DOWN_AFTER_FAILURES,
                 log: logging.Logger | None = None) -> None:
        self.name = name
        self.down_after = down_after
        self.log = log or logging.getLogger(__name__)
        self.runs = 0
        self.failures = 0  # every failed run since start
        self.failing = 0  # failed runs in a row, up to now
        self.last_error = ""
        self.last_success: float | None = None  # wall-clock seconds
        self.task: asyncio.Task[Any] | None = None

    def attempt(self) -> _Attempt:
        return _Attempt(self)

    def succeeded(self) -> None:
        self.runs += 1
        self.failing = 0
        self.last_success = time.time()

    def failed(self, exc: BaseException) -> None:
        self.runs += 1
        self.failures += 1
        self.failing += 1
        self.last_error = (f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__)[:300]

    def watch(self, task: asyncio.Task[Any]) -> asyncio.Task[Any]:
        """The job's loop: when it ends (it should run as long as the service), the job is down."""
        self.task = task
        return task

    @property
    def up(self) -> bool:
        return self.failing < self.down_after and (self.task is None or not self.task.done())

    def __call__(self) -> dict[str, Any]:
        state: dict[str, Any] = {"up": self.up, "job": True, "runs": self.runs, "failures": self.failures,
                                 "failing_in_a_row": self.failing, "last_error": self.last_error or None,
                                 "last_success_at": self.last_success}
        if self.task is not None and self.task.done():
            state["detail"] = "the job's loop has ended"
        return state


class _Attempt:
    """One run of a job: an exception is recorded and logged, never raised (cancellation still is)."""

    def __init__(self, runs: JobRuns) -> None:
        self.runs = runs

    def __enter__(self) -> JobRuns:
        return self.runs

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> bool:
        if exc is None:
            self.runs.succeeded()
            return False
        if not isinstance(exc, Exception):  # cancellation, KeyboardInterrupt: not a failed run
            return False
        self.runs.failed(exc)
        self.runs.log.error("%s run failed (%d in a row); retrying", self.runs.name, self.runs.failing,
                            exc_info=(kind or type(exc), exc, tb))
        return True


def track_job(ctx: AppContext, name: str, down_after: int = DOWN_AFTER_FAILURES,
              log: logging.Logger | None = None) -> JobRuns:
    """A job's runs, registered as its component in /healthz, /readyz and /metrics."""
    runs = JobRuns(name, down_after, log)
    ctx.health_checks[name] = runs
    return runs


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
