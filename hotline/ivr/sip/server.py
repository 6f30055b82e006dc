"""A SIP user agent server on UDP (RFC 3261) for the IVR: answers INVITEs from any peer.

Trunk mode: no registration; the carrier or PBX sends INVITEs here. Responses
go where the top Via says (received/rport), not to a configured server. One
dialog per call: INVITE → 100, 180, (ring) 200 with SDP, retransmitted until
ACK; BYE and CANCEL end it; a re-INVITE gets the same answer without touching
the media; OPTIONS keep-alives get 200; NOTIFYs report a REFER's progress.
Garbage is counted and dropped; nothing a peer sends can stop the server.
"""
from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from hotline.ivr.sip import message as sip
from hotline.ivr.sip import rtp, sdp

log = logging.getLogger(__name__)

T1 = 0.5
ALLOW = "INVITE, ACK, BYE, CANCEL, OPTIONS, NOTIFY, INFO, REFER"


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
                 ring_seconds: float = 0.5) -> None:
        self.host, self.port = host, port
        self.public_host = public_host or (host if host not in ("0.0.0.0", "") else "127.0.0.1")
        self.on_call, self.on_rejected = on_call, on_rejected
        self.rtp_ports, self.ring_seconds = rtp_ports, ring_seconds
        self.transport: asyncio.DatagramTransport | None = None
        self.dialogs: dict[str, Dialog] = {}
        self.rejected: dict[str, tuple[float, bytes]] = {}  # call id → (when, the final response), for retransmits
        self.pending: dict[tuple[str, int, str], asyncio.Future[sip.SipMessage]] = {}
        self.clock = rtp.MediaClock()
        self.tasks: set[asyncio.Task[None]] = set()
        self.garbage = 0
        self.calls_total = 0

    # --- transport ---------------------------------------------------------------
    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        await loop.create_datagram_endpoint(lambda: self, local_addr=(self.host, self.port))
        self.clock.start()

    async def stop(self) -> None:
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

    def error_received(self, exc: Exception) -> None:
        log.debug("SIP socket error: %s", exc)

    def send(self, msg: sip.SipMessage | bytes, addr: tuple[str, int]) -> bytes:
        data = msg if isinstance(msg, bytes) else msg.to_bytes()
        if self.transport is not None:
            self.transport.sendto(data, addr)
        return data

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
            msg = sip.parse(data)
        except (sip.SipParseError, ValueError) as exc:
            self.garbage += 1
            log.info("dropped a datagram from %s:%d that is not SIP: %s", addr[0], addr[1], exc)
            return
        try:
            if msg.is_request:
                self._request(msg, addr)
            else:
                self._response(msg)
        except Exception:  # one bad message must never stop the server
            self.garbage += 1
            log.exception("could not handle a SIP message from %s:%d", *addr)

    def _reply(self, request: sip.SipMessage, addr: tuple[str, int], status: int, **kwargs) -> bytes:  # type: ignore[no-untyped-def]
        dest = sip.via_destination(request.get_all("Via")[0], addr)
        return self.send(sip.response(request, status, **kwargs), dest)

    # --- requests ------------------------------------------------------------------
    def _request(self, msg: sip.SipMessage, addr: tuple[str, int]) -> None:
        method = msg.method
        dialog = self.dialogs.get(msg.call_id)
        if method == "INVITE":
            self._invite(msg, addr, dialog)
        elif method == "ACK":
            if dialog is not None:
                dialog.acked.set()
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

    def _invite(self, msg: sip.SipMessage, addr: tuple[str, int], dialog: Dialog | None) -> None:
        if dialog is not None:
            if sip.tag_of(msg.get("To")) and msg.cseq[0] > dialog.invite.cseq[0]:
                # A re-INVITE (session refresh, hold): same answer, the media keeps running.
                body = sdp.answer(dialog.offer, self.public_host, dialog.media.local_port)
                self._reply(msg, addr, 200, to_tag=dialog.local_tag, body=body, extra=self._contact())
            elif dialog.last_response:
                self.send(dialog.last_response, sip.via_destination(msg.get_all("Via")[0], addr))
            return
        if msg.call_id in self.rejected:
            self.send(self.rejected[msg.call_id][1], sip.via_destination(msg.get_all("Via")[0], addr))
            return
        caller, callee = sip.user_of(msg.get("From")) or "anonymous", sip.user_of(msg.get("To"))
        try:
            offer = sdp.parse_offer(msg.body)
        except sdp.NoCommonCodec:
            self._reject(msg, addr, 488, caller, callee, "failed", "no common codec: PCMU or PCMA")
            return
        except ValueError:
            self._reject(msg, addr, 488, caller, callee, "failed", "an INVITE without an SDP offer")
            return
        self._reply(msg, addr, 100)
        self._spawn(self._answer(msg, addr, offer, caller, callee))

    def _reject(self, msg: sip.SipMessage, addr: tuple[str, int], status: int, caller: str, callee: str,
                outcome: str, why: str) -> None:
        log.info("call %s from %s refused with %d: %s", msg.call_id, caller, status, why)
        data = self._reply(msg, addr, status, to_tag=sip.new_tag(), extra=[("Warning", f'399 hotline "{why}"')])
        self._remember_rejected(msg.call_id, data)
        self._spawn(self.on_rejected(msg.call_id, caller, callee, outcome))

    def _remember_rejected(self, call_id: str, data: bytes) -> None:
        now = time.monotonic()
        self.rejected[call_id] = (now, data)
        for old in [k for k, (when, _) in self.rejected.items() if now - when > 64 * T1]:
            del self.rejected[old]

    async def _answer(self, msg: sip.SipMessage, addr: tuple[str, int], offer: sdp.Offer, caller: str,
                      callee: str) -> None:
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
            return
        contact = msg.get("Contact")
        dialog = Dialog(call_id=msg.call_id, invite=msg, source=addr, local_tag=sip.new_tag(), offer=offer,
                        media=media, caller=caller, callee=callee,
                        remote_target=sip.uri_of(contact) if contact else sip.uri_of(msg.get("From")),
                        route=msg.get_all("Record-Route"))
        self.dialogs[msg.call_id] = dialog
        self.calls_total += 1
        try:
            dialog.last_response = self._reply(msg, addr, 180, to_tag=dialog.local_tag)
            await asyncio.sleep(self.ring_seconds)
            if dialog.cancelled:
                return
            body = sdp.answer(offer, self.public_host, media.local_port)
            media.remote = (offer.address, offer.port)
            self.clock.sessions.add(media)
            dialog.answered = True
            dialog.last_response = self._reply(msg, addr, 200, to_tag=dialog.local_tag, body=body,
                                               extra=self._contact())
            if not await self._await_ack(dialog, addr):
                log.warning("call %s: no ACK for our 200; hanging up", msg.call_id)
                await self.bye(dialog)
                if not dialog.ended_by == "caller":
                    await self.on_rejected(msg.call_id, caller, callee, "failed")
                return
            await self.on_call(dialog)
        finally:
            self.clock.sessions.discard(media)
            media.close()
            dialog.ended.set()
            self._remember_rejected(msg.call_id, dialog.last_response)  # late retransmits get the old answer
            self.dialogs.pop(msg.call_id, None)

    async def _await_ack(self, dialog: Dialog, addr: tuple[str, int]) -> bool:
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
                self.send(dialog.last_response, sip.via_destination(dialog.invite.get_all("Via")[0], addr))
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
            dest = sip.host_port_of(target)
        except sip.SipParseError:
            dest = dialog.source
        return sip.SipMessage(method=method, uri=dialog.remote_target, headers=headers, body=body), dest

    async def request(self, dialog: Dialog, method: str, extra: list[tuple[str, str]] | None = None,
                      timeout: float = 64 * T1) -> sip.SipMessage | None:
        """Send inside the dialog; the final response, or None when none comes."""
        msg, dest = self._in_dialog(dialog, method, extra)
        return await self.transact(msg, dest, timeout)

    async def transact(self, msg: sip.SipMessage, dest: tuple[str, int],
                       timeout: float = 64 * T1) -> sip.SipMessage | None:
        """Send a request with retransmissions (timer E) until a final response; None when none comes."""
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

    async def bye(self, dialog: Dialog) -> None:
        if dialog.ended.is_set() and dialog.ended_by:
            return
        dialog.ended_by = dialog.ended_by or "ivr"
        dialog.media.stop_playing()
        await self.request(dialog, "BYE", timeout=8 * T1)
        dialog.ended.set()

    async def refer(self, dialog: Dialog, uri: str, timeout: float = 30.0) -> bool:
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
