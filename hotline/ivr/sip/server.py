"""A SIP user agent server on UDP (RFC 3261) for the IVR: answers INVITEs from the allowed peers.

Trunk mode: no registration; the carrier or PBX sends INVITEs here. Responses
go where the top Via says (received/rport), not to a configured server. One
dialog per call: INVITE → 100, 180, (ring) 200 with SDP, retransmitted until
ACK; BYE and CANCEL end it; a re-INVITE gets the same answer without touching
the media; OPTIONS keep-alives get 200; NOTIFYs report a REFER's progress.

What a peer sends is data, never trusted: every value is checked where it is
parsed (message.py, sdp.py); a request with an invalid one gets 400, a peer
not on the allow-list gets 403, a source with too many calls in setup gets
486, all counted, and refusals go to the packet's source, never to an
address named inside the message. Every send goes through one guard that
only passes IP literals a socket can take, so no datagram can close the SIP
socket (should it close anyway, it is bound again). No RTP goes to a call's
offered address before the call is confirmed by its ACK (or RTP comes from
that address), so an unacknowledged INVITE costs its answers, not a stream.

The setup limit is per source address, and behind a trunk or a PBX every caller
shares one: a call holds its place only from the INVITE until its ACK, or until
`setup_slot_seconds` after our 200 when no ACK comes (its 200 is still sent again
and the call hung up on RFC 3261's timers), so unanswered INVITEs cannot keep
the callers behind that address busy for the transaction's 32 s.
"""
from __future__ import annotations

import asyncio
import logging
import socket
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from hotline.ivr.sip import message as sip
from hotline.ivr.sip import rtp, sdp
from hotline.ivr.sip.addresses import LOOPBACK, PeerPolicy, Resolver, ip_literal, sendable
from hotline.redact import mask

log = logging.getLogger(__name__)

T1 = 0.5
ALLOW = "INVITE, ACK, BYE, CANCEL, OPTIONS, NOTIFY, INFO, REFER"
LOG_PER_MINUTE = 50
MAX_SETUP_PER_SOURCE = 100  # defaults of [sip] max_setup_per_source and setup_slot_seconds
SETUP_SLOT_SECONDS = 4.0
MAX_REMEMBERED = 10_000  # final answers kept for retransmitted INVITEs (64*T1 each), at most


@dataclass
class Dialog:
    call_id: str
    invite: sip.SipMessage
    source: tuple[str, int]
    local_tag: str
    offer: sdp.Offer
    media: rtp.RtpSession
    caller: str
    callee: str
    remote_target: str
    route: list[str]
    digits: asyncio.Queue[str] = field(default_factory=asyncio.Queue)
    ended: asyncio.Event = field(default_factory=asyncio.Event)
    acked: asyncio.Event = field(default_factory=asyncio.Event)
    answered: bool = False
    cancelled: bool = False
    failed: bool = False  # the media failed: the call is ended and recorded as failed
    in_setup: bool = True  # counted against its source's calls in setup until ACK, end or setup_slot_seconds
    bye_sent: bool = False
    last_response: bytes = b""
    local_cseq: int = 0
    refer_result: asyncio.Future[int] | None = None
    ended_by: str = ""

    @property
    def to_header(self) -> str:
        to = self.invite.get("To")
        return to if sip.tag_of(to) else f"{to};tag={self.local_tag}"


OnCall = Callable[[Dialog], Awaitable[None]]
OnRejected = Callable[[str, str, str, str], Awaitable[None]]  # call id, caller, callee, outcome


class SipServer(asyncio.DatagramProtocol):
    def __init__(self, host: str, port: int, on_call: OnCall, on_rejected: OnRejected, *,
                 public_host: str = "", rtp_ports: tuple[int, int] = (20000, 30000),
                 ring_seconds: float = 0.5, policy: PeerPolicy | None = None, resolver: Resolver | None = None,
                 max_setup_per_source: int = MAX_SETUP_PER_SOURCE,
                 setup_slot_seconds: float = SETUP_SLOT_SECONDS) -> None:
        self.host, self.port = host, port
        self.public_host = public_host or (host if host not in ("0.0.0.0", "") else "127.0.0.1")
        self.on_call, self.on_rejected = on_call, on_rejected
        self.rtp_ports, self.ring_seconds = rtp_ports, ring_seconds
        self.policy = policy if policy is not None else PeerPolicy(LOOPBACK)
        self.resolver = resolver if resolver is not None else Resolver(enabled=False)
        self.max_setup_per_source = max_setup_per_source
        self.setup_slot_seconds = setup_slot_seconds
        self.transport: asyncio.DatagramTransport | None = None
        self.family = socket.AF_INET
        self.dialogs: dict[str, Dialog] = {}
        self.rejected: dict[str, tuple[float, bytes]] = {}  # call id → (when, the final response), for retransmits
        self.pending: dict[tuple[str, int, str], asyncio.Future[sip.SipMessage]] = {}
        self.setting_up: set[str] = set()  # call ids between the INVITE and their dialog (media port opening)
        self.in_setup: Counter[str] = Counter()  # source address → calls not yet ACKed
        self.clock = rtp.MediaClock()
        self.tasks: set[asyncio.Task[None]] = set()
        self._stopping = False
        self._log_window, self._log_count, self._log_suppressed = 0.0, 0, 0
        # Counters (health): not SIP or unanswerable; SIP with an invalid value; not on the allow-list;
        # over the per-source setup limit; sends refused by the guard; socket errors; the socket bound again.
        self.garbage = self.invalid = self.refused = self.busy = 0
        self.unsendable = self.send_errors = self.rebinds = 0
        self.calls_total = 0

    # --- transport ---------------------------------------------------------------
    async def start(self) -> None:
        self._stopping = False
        await self._bind()
        self.clock.start()

    async def _bind(self) -> None:
        loop = asyncio.get_running_loop()
        await loop.create_datagram_endpoint(lambda: self, local_addr=(self.host, self.port))

    def bound(self) -> bool:
        return self.transport is not None and not self.transport.is_closing()

    def healthy(self) -> bool:
        """Up means: the SIP socket is bound and the media clock ticked within the last second."""
        return self.bound() and self.clock.ticking(1.0)

    async def stop(self) -> None:
        self._stopping = True
        for dialog in list(self.dialogs.values()):
            if dialog.answered and not dialog.ended.is_set():
                self._spawn(self.bye(dialog))
        await asyncio.sleep(0.1)
        for task in list(self.tasks):
            task.cancel()
        await self.clock.stop()
        for dialog in self.dialogs.values():
            dialog.media.close()
        if self.transport is not None:
            self.transport.close()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        sock = transport.get_extra_info("socket")
        self.family = sock.family if sock is not None else socket.AF_INET

    def connection_lost(self, exc: Exception | None) -> None:
        if self._stopping:
            return
        log.error("the SIP socket closed (%r); binding it again", exc)
        self._spawn(self._rebind())

    async def _rebind(self) -> None:
        """The socket should never close while we run; if it does, calls must not stay unanswered."""
        delay = 0.05
        while not self._stopping:
            try:
                await self._bind()
                self.rebinds += 1
                log.warning("SIP socket bound again on %s:%d", self.host, self.port)
                return
            except OSError as exc:
                log.error("binding the SIP socket again failed: %s", exc)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 5.0)

    def error_received(self, exc: Exception) -> None:
        self.send_errors += 1
        log.debug("SIP socket error: %s", exc)

    def send(self, msg: sip.SipMessage | bytes, addr: tuple[str, int] | None) -> bytes:
        """The one way out: only to an IP literal and port the socket can take (else counted, not sent)."""
        data = msg if isinstance(msg, bytes) else msg.to_bytes()
        dest = sendable(addr, self.family) if addr is not None else None
        if dest is None:
            self.unsendable += 1
            self._note("not sending to %r: not an address a packet may go to", addr)
            return data
        if self.transport is not None and not self.transport.is_closing():
            try:
                self.transport.sendto(data, dest)
            except Exception as exc:  # the guard above should make this unreachable
                self.send_errors += 1
                log.error("SIP send to %s failed: %r", dest, exc)
        return data

    def _note(self, text: str, *args: object) -> None:
        """A refusal or drop, logged at most LOG_PER_MINUTE times a minute (the counters have them all):
        a flood must not become a flood of log lines."""
        now = time.monotonic()
        if now - self._log_window >= 60:
            if self._log_suppressed:
                log.info("%d more refusals or drops in the last minute not logged", self._log_suppressed)
            self._log_window, self._log_count, self._log_suppressed = now, 0, 0
        self._log_count += 1
        if self._log_count <= LOG_PER_MINUTE:
            log.info(text, *args)
        else:
            self._log_suppressed += 1

    def _spawn(self, coro: Awaitable[None]) -> None:
        task = asyncio.ensure_future(coro)
        self.tasks.add(task)
        task.add_done_callback(self._done)

    def _done(self, task: asyncio.Task[None]) -> None:
        self.tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("SIP task failed", exc_info=task.exception())

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        if not data.strip():
            return  # CRLF keep-alive
        try:
            self._datagram(data, addr)
        except Exception:  # one bad message must never stop the server
            self.garbage += 1
            log.exception("could not handle a SIP message from %s", addr)

    def _datagram(self, data: bytes, addr: tuple[str, int]) -> None:
        allowed = self.policy.allows(addr[0])
        try:
            msg = sip.parse(data)
        except sip.SipInvalid as exc:
            if not exc.message.is_request:
                self.invalid += 1  # a response cannot be answered: dropped
            elif not allowed:
                self._refuse(exc.message, addr)
            else:
                self.invalid += 1
                self._note("%s from %s:%d refused with 400: %s", exc.message.method, addr[0], addr[1], exc.reason)
                self._reply_source(exc.message, addr, 400, exc.reason)
            return
        except sip.SipParseError as exc:
            self.garbage += 1
            self._note("dropped a datagram from %s that is not SIP: %s", addr, exc)
            return
        if not msg.is_request:
            self._response(msg)
        elif not allowed:
            self._refuse(msg, addr)
        else:
            self._request(msg, addr)

    def _refuse(self, msg: sip.SipMessage, addr: tuple[str, int]) -> None:
        """Not on the allow-list: 403 to the source (an ACK gets nothing), counted."""
        self.refused += 1
        self._note("%s from %s:%d refused with 403: not on [sip] allowed_peers", msg.method, addr[0], addr[1])
        if msg.method != "ACK":
            self._reply_source(msg, addr, 403, "not an allowed peer")

    def _reply_source(self, request: sip.SipMessage, addr: tuple[str, int], status: int, why: str) -> bytes:
        """A refusal, stateless, to where the packet came from (never to an address inside it)."""
        if request.method == "ACK":
            return b""
        return self.send(sip.response(request, status, to_tag=sip.new_tag(), extra=[_warning(why)]), addr)

    def _reply(self, request: sip.SipMessage, addr: tuple[str, int], status: int, **kwargs) -> bytes:
        return self.send(sip.response(request, status, **kwargs), request.reply_to or addr)

    def _response_destination(self, msg: sip.SipMessage, addr: tuple[str, int]) -> tuple[str, int] | None:
        """Where responses to `msg` go, as an IP literal; None when refused (400) or waiting for a name."""
        via = sip.parse_via(msg.get_all("Via")[0])  # checked by the parser
        if via.rport:
            return addr
        host, port = via.received or via.host, via.port or 5060
        if ip_literal(host) is None:
            resolved = self.resolver.cached(host)
            if resolved is None and self.resolver.enabled:
                self._spawn(self._resolve_then_handle(msg, addr, host))
                return None
            if resolved is None:
                self.invalid += 1
                self._reply_source(msg, addr, 400, "a host name in Via is not resolved here: use rport or an address")
                return None
            host = resolved
        if sendable((host, port), self.family) is None:
            self.invalid += 1
            self._reply_source(msg, addr, 400, f"Via names {host}, which cannot be answered")
            return None
        return host, port

    async def _resolve_then_handle(self, msg: sip.SipMessage, addr: tuple[str, int], host: str) -> None:
        if await self.resolver.resolve(host) is None:
            self.invalid += 1
            self._reply_source(msg, addr, 400, f"Via host {host} does not resolve")
            return
        self._request(msg, addr)

    # --- requests ------------------------------------------------------------------
    def _request(self, msg: sip.SipMessage, addr: tuple[str, int]) -> None:
        dest = self._response_destination(msg, addr)
        if dest is None:
            return
        msg.reply_to = dest
        method = msg.method
        dialog = self.dialogs.get(msg.call_id)
        if method == "INVITE":
            self._invite(msg, addr, dialog)
        elif method == "ACK":
            self._ack(msg, dialog)
        elif method == "BYE":
            if dialog is None:
                self._reply(msg, addr, 481)
                return
            self._reply(msg, addr, 200)
            self._end(dialog, "caller")
        elif method == "CANCEL":
            self._cancel(msg, addr, dialog)
        elif method == "OPTIONS":
            self._reply(msg, addr, 200, extra=[("Allow", ALLOW), ("Accept", "application/sdp")])
        elif method == "NOTIFY" and dialog is not None:
            self._reply(msg, addr, 200)
            self._refer_progress(dialog, msg)
        elif method in ("INFO", "UPDATE", "NOTIFY", "MESSAGE") and dialog is not None:
            self._reply(msg, addr, 200)
        elif method in ("INFO", "UPDATE", "NOTIFY", "MESSAGE", "PRACK"):
            self._reply(msg, addr, 481)
        else:
            self._reply(msg, addr, 405, extra=[("Allow", ALLOW)])

    def _ack(self, msg: sip.SipMessage, dialog: Dialog | None) -> None:
        """The ACK for our 200 carries our To tag; only then is the call confirmed and its media released."""
        if dialog is None or not dialog.answered or sip.tag_of(msg.get("To")) != dialog.local_tag:
            return  # the ACK of a refusal, a late one, or a blind guess: nothing to do
        dialog.acked.set()
        dialog.media.release()
        self._setup_over(dialog)

    def _invite(self, msg: sip.SipMessage, addr: tuple[str, int], dialog: Dialog | None) -> None:
        if dialog is not None:
            if sip.tag_of(msg.get("To")) and msg.cseq[0] > dialog.invite.cseq[0]:
                # A re-INVITE (session refresh, hold): same answer, the media keeps running.
                body = sdp.answer(dialog.offer, self.public_host, dialog.media.local_port)
                self._reply(msg, addr, 200, to_tag=dialog.local_tag, body=body, extra=self._contact())
            elif dialog.last_response:
                self.send(dialog.last_response, msg.reply_to)
            return
        if msg.call_id in self.rejected:
            self.send(self.rejected[msg.call_id][1], msg.reply_to)
            return
        if msg.call_id in self.setting_up:
            return  # a retransmission while its media port opens: the 100 is on its way
        caller, callee = sip.user_of(msg.get("From")) or "anonymous", sip.user_of(msg.get("To"))
        if self.in_setup[addr[0]] >= self.max_setup_per_source:
            self.busy += 1
            self._reject(msg, addr, 486, caller, callee, None,
                         f"more than {self.max_setup_per_source} calls in setup from this address")
            return
        try:
            offer = sdp.parse_offer(msg.body)
        except sdp.InvalidOffer as exc:
            self.invalid += 1
            self._reject(msg, addr, 400, caller, callee, None, f"SDP: {exc}")
            return
        except sdp.NoCommonCodec:
            self._reject(msg, addr, 488, caller, callee, "failed", "no common codec: PCMU or PCMA")
            return
        except sdp.NotAcceptable as exc:
            why = str(exc) if msg.body.strip() else "an INVITE without an SDP offer"
            self._reject(msg, addr, 488, caller, callee, "failed", why)
            return
        if ip_literal(offer.address) is None and not self.resolver.enabled:
            self._reject(msg, addr, 488, caller, callee, "failed", "a host name in SDP is not resolved here")
            return
        self.in_setup[addr[0]] += 1
        self.setting_up.add(msg.call_id)
        self._reply(msg, addr, 100)
        self._spawn(self._answer(msg, addr, offer, caller, callee))

    def _reject(self, msg: sip.SipMessage, addr: tuple[str, int], status: int, caller: str, callee: str,
                outcome: str | None, why: str) -> None:
        """A final refusal, remembered for retransmissions; recorded as a call when `outcome` is given
        (a call we could not serve), not when it is the peer's fault or a flood (counted instead)."""
        self._note("call %s from %s refused with %d: %s", msg.call_id, mask(caller), status, why)
        data = self._reply(msg, addr, status, to_tag=sip.new_tag(), extra=[_warning(why)])
        self._remember_rejected(msg.call_id, data)
        if outcome is not None:
            self._spawn(self.on_rejected(msg.call_id, caller, callee, outcome))

    def _remember_rejected(self, call_id: str, data: bytes) -> None:
        now = time.monotonic()
        self.rejected.pop(call_id, None)
        self.rejected[call_id] = (now, data)
        for old in [k for k, (when, _) in self.rejected.items() if now - when > 64 * T1]:
            del self.rejected[old]
        while len(self.rejected) > MAX_REMEMBERED:
            del self.rejected[next(iter(self.rejected))]

    def _setup_over(self, dialog: Dialog) -> None:
        if dialog.in_setup:
            dialog.in_setup = False
            self._release_setup(dialog.source[0])

    def _release_setup(self, source: str) -> None:
        self.in_setup[source] -= 1
        if self.in_setup[source] <= 0:
            del self.in_setup[source]

    async def _answer(self, msg: sip.SipMessage, addr: tuple[str, int], offer: sdp.Offer, caller: str,
                      callee: str) -> None:
        dialog: Dialog | None = None
        try:
            dialog = await self._open_dialog(msg, addr, offer, caller, callee)
            if dialog is not None:
                await self._run_dialog(dialog)
        finally:
            self.setting_up.discard(msg.call_id)
            if dialog is None:
                self._release_setup(addr[0])
            else:
                self._setup_over(dialog)
                self.clock.sessions.discard(dialog.media)
                dialog.media.close()
                dialog.ended.set()
                self._remember_rejected(msg.call_id, dialog.last_response)  # late retransmits get the old answer
                self.dialogs.pop(msg.call_id, None)

    async def _open_dialog(self, msg: sip.SipMessage, addr: tuple[str, int], offer: sdp.Offer, caller: str,
                           callee: str) -> Dialog | None:
        address = offer.address if ip_literal(offer.address) else await self.resolver.resolve(offer.address)
        if address is None:
            self._reject(msg, addr, 488, caller, callee, "failed", f"SDP host {offer.address} does not resolve")
            return None
        dialog: Dialog | None = None

        def on_digit(key: str) -> None:
            if dialog is not None:
                dialog.digits.put_nowait(key)

        try:
            media = await rtp.open_session(self.host, self.rtp_ports,
                                           offer.payload_type, offer.dtmf_payload_type, on_digit)
        except OSError as exc:
            log.error("call %s refused: %s", msg.call_id, exc)
            self._reject(msg, addr, 503, caller, callee, "failed", "no free media port")
            return None
        if not media.offer(address, offer.port):
            media.close()
            self._reject(msg, addr, 488, caller, callee, "failed", f"no media can be sent to {address}")
            return None
        contact = msg.get("Contact")
        dialog = Dialog(call_id=msg.call_id, invite=msg, source=addr, local_tag=sip.new_tag(), offer=offer,
                        media=media, caller=caller, callee=callee,
                        remote_target=sip.uri_of(contact) if contact else sip.uri_of(msg.get("From")),
                        route=msg.get_all("Record-Route"))
        media.on_failure = lambda exc, d=dialog: self._media_failed(d, exc)
        self.dialogs[msg.call_id] = dialog
        self.setting_up.discard(msg.call_id)
        self.calls_total += 1
        return dialog

    async def _run_dialog(self, dialog: Dialog) -> None:
        msg = dialog.invite
        dialog.last_response = self._reply(msg, dialog.source, 180, to_tag=dialog.local_tag)
        await asyncio.sleep(self.ring_seconds)
        if dialog.cancelled:
            return
        body = sdp.answer(dialog.offer, self.public_host, dialog.media.local_port)
        self.clock.sessions.add(dialog.media)  # silent until released by the ACK (or symmetric RTP)
        dialog.answered = True
        dialog.last_response = self._reply(msg, dialog.source, 200, to_tag=dialog.local_tag, body=body,
                                           extra=self._contact())
        # No ACK soon: the call gives its place back to its source's other callers, while its
        # transaction goes on (the 200 sent again until 64*T1, then a BYE).
        slot = asyncio.get_running_loop().call_later(self.setup_slot_seconds, self._setup_over, dialog)
        try:
            acked = await self._await_ack(dialog)
        finally:
            slot.cancel()
        if not acked:
            if dialog.ended_by != "caller":
                log.warning("call %s: no ACK for our 200; hanging up", msg.call_id)
            await self.bye(dialog)
            if dialog.ended_by != "caller":
                await self.on_rejected(msg.call_id, dialog.caller, dialog.callee, "failed")
            return
        self._setup_over(dialog)
        await self.on_call(dialog)

    async def _await_ack(self, dialog: Dialog) -> bool:
        """Retransmit the 200 (T1, 2T1, … up to 4 s apart) until ACK, for 64*T1."""
        interval, waited = T1, 0.0
        while waited < 64 * T1:
            try:
                await asyncio.wait_for(dialog.acked.wait(), interval)
                return True
            except TimeoutError:
                if dialog.ended.is_set():
                    return False
                waited += interval
                interval = min(interval * 2, 4.0)
                self.send(dialog.last_response, dialog.invite.reply_to)
        return False

    def _cancel(self, msg: sip.SipMessage, addr: tuple[str, int], dialog: Dialog | None) -> None:
        if dialog is None:
            self._reply(msg, addr, 481)
            return
        self._reply(msg, addr, 200)
        if dialog.answered:
            return  # too late: the call is up; the caller will send BYE
        dialog.cancelled = True
        dialog.last_response = self._reply(dialog.invite, dialog.source, 487, to_tag=dialog.local_tag)
        dialog.ended_by = "cancel"
        dialog.ended.set()
        self._spawn(self.on_rejected(dialog.call_id, dialog.caller, dialog.callee, "abandoned"))

    def _end(self, dialog: Dialog, by: str) -> None:
        dialog.ended_by = dialog.ended_by or by
        dialog.ended.set()
        dialog.media.stop_playing()

    def _media_failed(self, dialog: Dialog, exc: Exception) -> None:
        """The call's media cannot go on: the caller gets a BYE, the call ends and is recorded as failed."""
        log.error("call %s: media failed (%r); ending the call", dialog.call_id, exc)
        dialog.failed = True
        if dialog.ended.is_set():
            return
        self._spawn(self.bye(dialog, reason='Q.850;cause=41;text="media failure"'))
        dialog.ended_by = dialog.ended_by or "media"
        dialog.ended.set()

    def _contact(self) -> list[tuple[str, str]]:
        return [("Contact", f"<sip:ivr@{self.public_host}:{self.port}>"), ("Allow", ALLOW)]

    # --- requests we send inside a dialog ---------------------------------------------------
    def _in_dialog(self, dialog: Dialog, method: str, extra: list[tuple[str, str]] | None = None,
                   body: bytes = b"") -> tuple[sip.SipMessage, tuple[str, int]]:
        dialog.local_cseq += 1
        headers = [("Via", f"SIP/2.0/UDP {self.public_host}:{self.port};branch={sip.new_branch()};rport"),
                   ("Max-Forwards", "70")]
        headers += [("Route", r) for r in dialog.route]
        headers += [("From", dialog.to_header), ("To", dialog.invite.get("From")), ("Call-ID", dialog.call_id),
                    ("CSeq", f"{dialog.local_cseq} {method}"), ("User-Agent", "hotline-ivr")]
        headers += extra or []
        target = sip.uri_of(dialog.route[0]) if dialog.route else dialog.remote_target
        try:
            dest = sip.host_port_of(target)  # checked when the INVITE was parsed
        except sip.SipParseError:
            dest = dialog.source
        return sip.SipMessage(method=method, uri=dialog.remote_target, headers=headers, body=body), dest

    async def request(self, dialog: Dialog, method: str, extra: list[tuple[str, str]] | None = None,
                      timeout: float = 64 * T1) -> sip.SipMessage | None:  # noqa: ASYNC109
        """Send inside the dialog; the final response, or None when none comes.

        A host name in Contact or Record-Route is resolved off the loop when [sip] resolve_hostnames
        is on; otherwise (or when it does not resolve) the request goes to the INVITE's source."""
        msg, (host, port) = self._in_dialog(dialog, method, extra)
        address = host if ip_literal(host) else await self.resolver.resolve(host)
        dest = (address, port) if address and sendable((address, port), self.family) else dialog.source
        return await self.transact(msg, dest, timeout)

    async def transact(self, msg: sip.SipMessage, dest: tuple[str, int],
                       timeout: float = 64 * T1) -> sip.SipMessage | None:  # noqa: ASYNC109
        """Send a request with retransmissions (timer E) until a final response; None when none comes.

        `dest` may name a configured host (the registrar): resolved off the loop, whatever
        resolve_hostnames says, since it comes from our configuration, not from the wire."""
        if ip_literal(dest[0]) is None:
            address = await self.resolver.resolve(dest[0], trusted=True)
            if address is None:
                return None
            dest = (address, dest[1])
        number, method = msg.cseq
        key = (msg.call_id, number, method)
        future: asyncio.Future[sip.SipMessage] = asyncio.get_running_loop().create_future()
        self.pending[key] = future
        data = self.send(msg, dest)
        interval, waited = T1, 0.0
        try:
            while waited < timeout:
                try:
                    return await asyncio.wait_for(asyncio.shield(future), min(interval, timeout - waited))
                except TimeoutError:
                    waited += interval
                    interval = min(interval * 2, 4.0)
                    self.send(data, dest)
            return None
        finally:
            self.pending.pop(key, None)

    def _response(self, msg: sip.SipMessage) -> None:
        number, method = msg.cseq
        future = self.pending.get((msg.call_id, number, method))
        if future is not None and not future.done() and msg.status >= 200:
            future.set_result(msg)

    async def bye(self, dialog: Dialog, reason: str = "") -> None:
        if dialog.bye_sent or dialog.ended_by in ("caller", "cancel") or (dialog.ended.is_set() and not reason):
            return
        dialog.bye_sent = True
        dialog.ended_by = dialog.ended_by or "ivr"
        dialog.media.stop_playing()
        await self.request(dialog, "BYE", extra=[("Reason", reason)] if reason else None, timeout=8 * T1)
        dialog.ended.set()

    async def refer(self, dialog: Dialog, uri: str, timeout: float = 30.0) -> bool:  # noqa: ASYNC109
        """Blind transfer (RFC 3515): True once the far end reports 2xx for the new call."""
        loop = asyncio.get_running_loop()
        dialog.refer_result = loop.create_future()
        answer = await self.request(dialog, "REFER", extra=[
            ("Refer-To", f"<{uri}>"), ("Referred-By", f"<sip:ivr@{self.public_host}:{self.port}>"),
            ("Contact", f"<sip:ivr@{self.public_host}:{self.port}>")])
        if answer is None or not 200 <= answer.status < 300:
            return False
        try:
            status = await asyncio.wait_for(dialog.refer_result, timeout)
        except TimeoutError:
            return False
        return 200 <= status < 300

    def _refer_progress(self, dialog: Dialog, msg: sip.SipMessage) -> None:
        if dialog.refer_result is None or dialog.refer_result.done():
            return
        first = msg.body.decode(errors="replace").split("\n", 1)[0].strip()
        parts = first.split()
        if len(parts) >= 2 and parts[0] == "SIP/2.0" and parts[1].isdigit() and int(parts[1]) >= 200:
            dialog.refer_result.set_result(int(parts[1]))


def _warning(why: str) -> tuple[str, str]:
    text = "".join(c if c.isprintable() and c not in '"\\' else "?" for c in why)[:120]
    return "Warning", f'399 hotline "{text}"'
