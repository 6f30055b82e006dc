"""The outbound dialler: pyVoIP registered as an extension, placing callback surveys and outage notices.

Every [outbound] interval_seconds it claims due jobs (hotline/ivr/outbound/jobs.py)
up to the free lines, within calling hours, and only while registered. A call's
row in `calls` is written before its INVITE; an answered call runs a flow from
ivr_flows/ (callback, outage_notice) with the same engine as the IVR, over a
CallLine whose SIP and RTP are pyVoIP's threads (patched in pyvoip_fixes.py).
"""
from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
import time
from typing import Any

from hotline.callbacks.scheduler import calling_window, next_calling_time
from hotline.context import AppContext
from hotline.health import JobRuns
from hotline.ivr import call_records
from hotline.ivr.engine import FlowRunner
from hotline.ivr.flows import Flow, FlowError, Node, load_flows
from hotline.ivr.line import CallLine
from hotline.ivr.outbound import jobs
from hotline.ivr.outbound.line import AudioCache, CallEvents, PyVoIPCallLine
from hotline.ivr.outbound.pyvoip_fixes import DialledCall, DiallerPhone
from hotline.ivr.prompts import PromptLibrary
from hotline.ivr.speech import numbers_in
from hotline.redact import mask
from models.call import OutboundJob

log = logging.getLogger(__name__)

FLOWS = {"callback": "callback", "outage_notice": "outage_notice"}  # purpose -> flow name in ivr_flows/
CANCEL_WAIT = 8.0  # seconds for a CANCEL to end the ringing


def outcome_of(status: int) -> str:
    """What an unanswered call's final SIP status means to the utility (and whether it is tried again)."""
    if status in (486, 600):
        return "busy"
    if status in (408, 480, 487):
        return "no_answer"
    if status == 603:
        return "rejected"
    if status in (404, 484, 604, 410):
        return "invalid_number"
    return "failed"


class OutboundFlowRunner(FlowRunner):
    """The IVR's flow engine with the call's words (ticket number, resolution, notice) known from the start."""

    def __init__(self, ctx: AppContext, flow: Flow, prompts: PromptLibrary, line: CallLine,
                 words: dict[str, str]) -> None:
        super().__init__(ctx, flow, prompts, line)
        self.words = words

    async def _step(self, node: Node) -> str | None:
        if self.state is not None and self.words:
            self.state.vars.update(self.words)
            self.words = {}
        return await super()._step(node)


class Dialler:
    def __init__(self, ctx: AppContext) -> None:
        cfg = ctx.config.outbound
        if not cfg.registrar:
            raise ValueError("[outbound] registrar: expected host:port of the PBX or SIP trunk")
        if ctx.config.sip.enabled and cfg.sip_port == ctx.config.sip.port and cfg.local_host == ctx.config.sip.host:
            raise ValueError("[outbound] sip_port: the IVR listens there already ([sip] port)")
        self.ctx, self.cfg = ctx, cfg
        self.window = calling_window(cfg.calling_hours, "[outbound] calling_hours")
        flows = load_flows(ctx.config.path(ctx.config.sip.flows_dir))
        missing = [name for name in FLOWS.values() if name not in flows]
        if missing:
            raise FlowError(f"[outbound] needs the flows {', '.join(missing)} in {ctx.config.sip.flows_dir}")
        self.flows = {purpose: flows[name] for purpose, name in FLOWS.items()}
        PromptLibrary.check_tools()
        sip = ctx.config.sip
        self.prompts = PromptLibrary(ctx.config.path(sip.prompt_dir), ctx.config.var_dir / "prompt-cache", sip.voice)
        self.audio = AudioCache()
        host, _, port = cfg.registrar.rpartition(":")
        self.phone = DiallerPhone(server=host or cfg.registrar, port=int(port) if host and port else 5060,
                                  username=cfg.username, password=cfg.password, domain=cfg.domain,
                                  caller_id=cfg.caller_id, my_ip=cfg.local_host, sip_port=cfg.sip_port,
                                  rtp_low=cfg.rtp_port_min, rtp_high=cfg.rtp_port_max, expires=cfg.register_expires)
        self.caller = cfg.caller_id or cfg.username
        self.in_progress = 0
        self.most_at_once = 0  # the highest number of calls in progress at once since start (tests, bench)
        self.placed = 0
        self.last_error = ""
        self.runs = JobRuns("dialler", log=log)  # its sweeps' health check: down when they keep failing
        self._calls: set[asyncio.Task[None]] = set()
        self._task: asyncio.Task[None] | None = None
        self._wake = asyncio.Event()

    # --- life ------------------------------------------------------------------------------

    async def start(self) -> None:
        await self.warm()
        await jobs.requeue_interrupted(self.ctx, self.ctx.clock())
        await asyncio.to_thread(self.phone.start)
        self._task = self.runs.watch(asyncio.create_task(self._run(), name="outbound-dialler"))
        log.info("dialler: extension %s at %s, %d line(s), calling hours %s", self.cfg.username, self.cfg.registrar,
                 self.cfg.lines, self.cfg.calling_hours)

    async def warm(self) -> None:
        for flow in self.flows.values():
            static = [(pid, text) for pid, text in flow.prompts.items() if "{" not in text]
            await asyncio.gather(*(self.prompts.audio(numbers_in(text), pid) for pid, text in static))

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        for task in list(self._calls):
            task.cancel()
        if self._calls:
            await asyncio.wait(list(self._calls), timeout=CANCEL_WAIT + 2)
        await asyncio.to_thread(self.phone.stop)

    def wake(self) -> None:
        """Look for due calls now (a newly queued outage notice) rather than at the next interval."""
        self._wake.set()

    async def _run(self) -> None:
        while True:
            with self.runs.attempt():  # a bad row or a database hiccup must not end the dialler
                await self.sweep(self.ctx.clock())
            if self.runs.failing:
                self.last_error = self.runs.last_error
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self.cfg.interval_seconds)
            self._wake.clear()

    def status(self) -> dict[str, Any]:
        sip = self.phone.sip
        return {"up": sip.registered, "registered": sip.registered, "registrar": self.cfg.registrar,
                "extension": self.cfg.username, "last_error": sip.last_error or self.last_error,
                "register_attempts": sip.register_attempts, "calls_in_progress": self.in_progress,
                "lines": self.cfg.lines, "calls_placed": self.placed, "calling_hours": self.cfg.calling_hours}

    # --- the queue -------------------------------------------------------------------------

    async def sweep(self, now: dt.datetime) -> int:
        """Place the due calls that fit in the free lines; returns how many were started."""
        if not self.phone.sip.registered:
            return 0  # nothing is dialled through a PBX that has not accepted us
        opens = next_calling_time(now, self.window, self.ctx.router.calendar.timezone)
        if opens > now:
            await jobs.postpone_due(self.ctx, now, opens)
            return 0
        claimed = await jobs.claim_due(self.ctx, now, self.cfg.lines - self.in_progress)
        for job in claimed:
            self.in_progress += 1
            self.most_at_once = max(self.most_at_once, self.in_progress)
            task = asyncio.create_task(self._place(job), name=f"outbound-call-{job.id}")
            self._calls.add(task)
            task.add_done_callback(self._calls.discard)
        return len(claimed)

    async def wait_idle(self) -> None:
        """Until every call started so far has ended and been settled (tests, bench)."""
        while self._calls:
            await asyncio.wait(list(self._calls))

    # --- one call --------------------------------------------------------------------------

    async def _place(self, job: OutboundJob) -> None:
        call_id: int | None = None
        try:
            words = await self._words(job)
            if words is None:  # nothing left to say: answered elsewhere, or the outage is over
                await jobs.settle(self.ctx, job, "cancelled", None, self.ctx.clock())
                return
            loop = asyncio.get_running_loop()
            events = CallEvents(loop)
            call = await asyncio.to_thread(self.phone.dial, job.phone, events.listener)
            call_id = await call_records.dialled(
                self.ctx, sip_call_id=call.sip_call_id, caller=self.caller, callee=job.phone, purpose=job.purpose,
                ticket_id=job.ticket_id, outage_id=job.outage_id, callback_task_id=job.callback_task_id,
                now=self.ctx.clock())
            self.placed += 1
            answered = await self._ring(call, events)
            if not answered:
                outcome = outcome_of(events.status)
                await call_records.unanswered(self.ctx, call_id, outcome, events.status or None, self.ctx.clock())
                await jobs.settle(self.ctx, job, outcome, call_id, self.ctx.clock())
                return
            line = PyVoIPCallLine(call, events, self.audio, self.caller)
            runner = OutboundFlowRunner(self.ctx, self.flows[job.purpose], self.prompts, line, words)
            state = await runner.run()
            answer = next((jobs.ANSWER_PATHS[p] for p in reversed(state.menu_path) if p in jobs.ANSWER_PATHS), None)
            await jobs.settle(self.ctx, job, "answered", call_id, self.ctx.clock(),
                              answer=answer if job.purpose == "callback" else None)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            self.last_error = f"{type(exc).__name__}: {exc}"[:300]
            log.exception("dialler: the call to %s failed", mask(job.phone))
            if call_id is not None:
                await call_records.unanswered(self.ctx, call_id, "failed", None, self.ctx.clock())
            await jobs.settle(self.ctx, job, "failed", call_id, self.ctx.clock())
        finally:
            self.in_progress -= 1

    async def _ring(self, call: DialledCall, events: CallEvents) -> bool:
        """Send the INVITE and wait for the answer; at the ring timeout CANCEL it. True once answered."""
        started = time.monotonic()
        await asyncio.to_thread(call.send_invite)
        waits = [asyncio.ensure_future(events.answered.wait()), asyncio.ensure_future(events.ended.wait())]
        remaining = max(self.cfg.ring_seconds - (time.monotonic() - started), 0.1)
        try:
            await asyncio.wait(waits, timeout=remaining, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for waiting in waits:
                waiting.cancel()
        if events.answered.is_set():
            return True  # even if already hung up: the flow records an answered call without keys
        if not events.ended.is_set():
            await asyncio.to_thread(call.cancel, CANCEL_WAIT)  # D3: the ring timeout ends the call
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(events.ended.wait(), 2)
            events.status = 487 if events.status in (0, 200) else events.status
        return False

    async def _words(self, job: OutboundJob) -> dict[str, str] | None:
        if job.purpose == "callback":
            return await jobs.callback_words(self.ctx, job.callback_task_id) if job.callback_task_id else None
        if job.outage_id is None:
            return None
        found = await jobs.outage_words(self.ctx, job.outage_id)
        if found is None or found[1] <= self.ctx.clock():
            return None
        return {"notice": found[0]}
