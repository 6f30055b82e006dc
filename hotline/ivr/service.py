"""The IVR inside the service process: flows checked at start, prompts warmed, SIP listening."""
from __future__ import annotations

import asyncio
import ipaddress
import logging
from typing import Any

from hotline.context import AppContext
from hotline.ivr import call_records, speech
from hotline.ivr.engine import FlowRunner
from hotline.ivr.flows import Flow, FlowError, load_flows
from hotline.ivr.prompts import PromptLibrary
from hotline.ivr.sip import message as sip
from hotline.ivr.sip.addresses import LOOPBACK, PeerPolicy, Resolver, ip_literal, parse_networks
from hotline.ivr.sip.call_line import SipCallLine
from hotline.ivr.sip.registration import Registration
from hotline.ivr.sip.rtp import PromptFrames
from hotline.ivr.sip.server import Dialog, SipServer

log = logging.getLogger(__name__)


def load_configured_flow(ctx: AppContext) -> Flow:
    cfg = ctx.config.sip
    flows = load_flows(ctx.config.path(cfg.flows_dir))
    if cfg.flow not in flows:
        raise FlowError(f"[sip] flow = {cfg.flow!r}, but {cfg.flows_dir} has only {', '.join(flows)}")
    return flows[cfg.flow]


class IvrService:
    def __init__(self, ctx: AppContext) -> None:
        cfg = ctx.config.sip
        self.ctx = ctx
        self.flow = load_configured_flow(ctx)
        PromptLibrary.check_tools()
        self.prompts = PromptLibrary(ctx.config.path(cfg.prompt_dir), ctx.config.var_dir / "prompt-cache", cfg.voice)
        self.frames = PromptFrames()
        # Who may call: [sip] allowed_peers, or loopback; the registrar (where calls come from when
        # registered) always. A host name there is a configuration error, reported at start.
        self.policy = PeerPolicy(parse_networks(cfg.allowed_peers) or LOOPBACK)
        self.resolver = Resolver(enabled=cfg.resolve_hostnames)
        self.server = SipServer(cfg.host, cfg.port, self._on_call, self._on_rejected, public_host=cfg.public_host,
                                rtp_ports=(cfg.rtp_port_min, cfg.rtp_port_max), ring_seconds=cfg.ring_seconds,
                                policy=self.policy, resolver=self.resolver,
                                max_setup_per_source=cfg.max_setup_per_source,
                                setup_slot_seconds=cfg.setup_slot_seconds)
        self.active = 0
        self.registration = Registration(self.server, cfg.registrar, cfg.username, cfg.password, cfg.domain,
                                         cfg.register_expires) if cfg.registrar else None
        self._registering: asyncio.Task[None] | None = None

    async def start(self) -> None:
        await self.warm()
        await self._allow_registrar()
        await self.server.start()
        if self.registration is not None:
            self._registering = asyncio.create_task(self.registration.run(), name="sip-registration")
        log.info("IVR listening on SIP/UDP %s:%d (flow %s)", self.ctx.config.sip.host, self.ctx.config.sip.port,
                 self.flow.name)

    async def warm(self) -> None:
        """Synthesize every prompt without placeholders now, so no caller waits for it."""
        static = [(pid, text) for pid, text in self.flow.prompts.items() if "{" not in text]
        await asyncio.gather(*(self.prompts.audio(speech.numbers_in(text), pid) for pid, text in static))

    async def _allow_registrar(self) -> None:
        if not self.ctx.config.sip.registrar:
            return
        host = sip.host_port_of(self.ctx.config.sip.registrar)[0]
        address = await self.resolver.resolve(host, trusted=True)  # once, off the loop
        if address is None:
            log.warning("the registrar %s does not resolve; INVITEs from it are refused until it is listed "
                        "in [sip] allowed_peers", host)
            return
        parsed = ip_literal(address)
        assert parsed is not None
        self.policy.add(ipaddress.ip_network(parsed))

    async def stop(self) -> None:
        if self._registering is not None:
            self._registering.cancel()
        await self.server.stop()

    async def _on_call(self, dialog: Dialog) -> None:
        self.active += 1
        try:
            line = SipCallLine(self.server, dialog, self.frames)
            await FlowRunner(self.ctx, self.flow, self.prompts, line, self.ctx.config.sip.agent_uri).run()
        finally:
            self.active -= 1

    async def _on_rejected(self, call_id: str, caller: str, callee: str, outcome: str) -> None:
        """A call that never reached the menu (no SDP, no common codec, cancelled while ringing) is still recorded."""
        await call_records.refused(self.ctx, sip_call_id=call_id, caller=caller, callee=callee, outcome=outcome,
                                   now=self.ctx.clock())

    def status(self) -> dict[str, Any]:
        """Up only while the SIP socket is bound and the media clock ticked within the last second
        (and, when registered mode, the registration holds); the counters say what was refused."""
        cfg, server = self.ctx.config.sip, self.server
        listening, ticking = server.bound(), server.clock.ticking(1.0)
        result: dict[str, Any] = {
            "up": listening and ticking, "listen": f"udp:{cfg.host}:{cfg.port}", "socket_bound": listening,
            "media_clock_ticking": ticking, "mode": "registered" if cfg.registrar else "trunk",
            "flow": self.flow.name, "active_calls": self.active, "calls_total": server.calls_total,
            "calls_in_setup": sum(server.in_setup.values()), "allowed_peers": self.policy.describe(),
            "dropped_datagrams": server.garbage, "invalid": server.invalid, "refused": server.refused,
            "busy": server.busy, "unsendable": server.unsendable, "send_errors": server.send_errors,
            "socket_rebinds": server.rebinds, "media_failures": server.clock.failed_sessions,
            "media_clock_restarts": server.clock.restarts, "late_media_ticks": server.clock.late_ticks,
            "resolve_failures": self.resolver.failures}
        if self.registration is not None:
            result["registration"] = self.registration.status()
            result["up"] = result["up"] and self.registration.registered
        return result
