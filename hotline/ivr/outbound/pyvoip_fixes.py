"""pyVoIP 1.6.8, made dependable for the outbound dialler: subclasses applied at import, no fork, no copy.

pyVoIP is kept for what it does: the UDP socket and its receive thread, the SIP
message parser, tags and branches, a call's RTP media (a sender and a receiver
thread per call, 8 kHz audio in, RFC 4733 digits out) and its RTP port pool.
Its outbound defects that a dialler meets are mended here, each with its
number; tests/ivr/test_outbound.py (D1-D6) and tests/ivr/test_pyvoip_fixes.py (D7-D9, the session refresh)
prove each one against Kamailio and sipp:

  D1  the ACK to a 200 carries a fresh To-tag (the PBX resends the 200 and drops
      the call after ~30 s)           -> ACK with the 200's To, its Contact as
                                          Request-URI and the Record-Route set
  D2  486/480/487/603/408/404... ignored, the call stays DIALING forever
                                       -> every final response >= 300 ends the
                                          call with its status, and is ACKed
  D3  no CANCEL: a ring timeout cannot end the call
                                       -> cancel(), RFC 3261 9.1
  D4  a 407 to the INVITE is not answered (calls through an authenticating proxy block)
                                       -> the INVITE is sent again with
                                          Proxy-Authorization (401: Authorization)
  D5  the digest uri is not the Request-URI (and qop=auth is not understood)
                                       -> digest() over the Request-URI, qop=auth
  D6  registration stops for good after 3 failures
                                       -> a loop that never gives up: back-off
                                          1 s ... 60 s, state for /healthz
  D7  hangup() races a remote BYE (InvalidStateError)
                                       -> one lock per call; ending twice is a no-op
  D8  A-law is encoded as mu-law       -> encode_packet uses lin2alaw for PCMA
  D9  invite() holds the receive lock while it waits for the answer (nothing else
      is received meanwhile)           -> invite only sends; every response comes
                                          through the receive thread
  and, met on the way: a session-refresh re-INVITE (the answer's media offered again, RFC 4028) got 488
  (-> 200 with our SDP for the formats offered; any other re-INVITE still gets 488 and the call keeps its
  media); the BYE copies the peer's Via and branch (its 200 is misrouted); Call-IDs repeat after a restart
  (a counter's hash); a telephone-event above 15 kills the RTP receive thread; OPTIONS keep-alives are dropped; the
  RTP ports were released by the garbage collector (and twice).

Nothing here runs on the event loop: the receive, registration and RTP threads
are pyVoIP's or ours, and the dialler hands a call's events to the loop through
the listener it gives `dial()`.
"""
from __future__ import annotations

import hashlib
import logging
import re
import select
import socket
import threading
import time
import uuid
from collections.abc import Callable
from typing import Any

import pyVoIP.VoIP.VoIP as pv  # before pyVoIP.SIP: imported alone, SIP is a circular import
from pyVoIP import RTP, SIP
from pyVoIP.VoIP.status import PhoneStatus

from hotline.redact import mask

log = logging.getLogger(__name__)

T1, T2 = 0.5, 4.0  # RFC 3261 retransmission timers (seconds)
TRANSACTION_SECONDS = 8.0  # a non-INVITE request unanswered this long has failed (Timer F, shortened)
INVITE_SECONDS = 32.0  # Timer B: no response at all to an INVITE
ALLOW = "INVITE, ACK, BYE, CANCEL, OPTIONS"
Listener = Callable[[str, Any], None]  # (event, value): "ringing", "answered", "ended" (status), "digit" (key)


# --- raw headers: pyVoIP keeps only the first of each and does not parse Proxy-Authenticate ----------


def _head_lines(raw: bytes) -> list[str]:
    return raw.split(b"\r\n\r\n", 1)[0].decode("utf-8", "replace").split("\r\n")


def header_values(raw: bytes, name: str, split: bool = True) -> list[str]:
    """Every value of a header, in order (comma-separated lists split outside <>)."""
    out: list[str] = []
    for line in _head_lines(raw)[1:]:
        key, sep, value = line.partition(":")
        if not sep or key.strip().lower() != name.lower():
            continue
        if not split:
            out.append(value.strip())
            continue
        depth, part = 0, ""
        for ch in value:
            depth += ch == "<"
            depth -= ch == ">"
            if ch == "," and depth == 0:
                out.append(part.strip())
                part = ""
            else:
                part += ch
        out.append(part.strip())
    return [v for v in out if v]


def _uri_of(value: str) -> str:
    """The URI in a name-addr (`"x" <sip:a@b;lr>;tag=1` -> `sip:a@b;lr`) or a bare addr-spec."""
    if "<" in value:
        return value.split("<", 1)[1].split(">", 1)[0]
    return value.split(";", 1)[0].strip()


def _tag_of(value: str) -> str:
    match = re.search(r";\s*tag=([^;>\s]+)", value.split(">")[-1] if ">" in value else value)
    return match.group(1) if match else ""


# --- D5: digest over the Request-URI, qop=auth ------------------------------------------------------------


def digest(challenge: str, *, username: str, password: str, method: str, uri: str) -> str:
    """The credentials (after `Authorization: ` or `Proxy-Authorization: `) answering a Digest challenge."""
    params = {k.lower(): v.strip('"') for k, v in re.findall(r'(\w+)=("[^"]*"|[^\s,]+)', challenge)}
    realm, nonce = params.get("realm", ""), params.get("nonce", "")

    def md5(text: str) -> str:
        return hashlib.md5(text.encode()).hexdigest()  # RFC 2617 digest is MD5

    ha1, ha2 = md5(f"{username}:{realm}:{password}"), md5(f"{method}:{uri}")
    fields = [f'username="{username}"', f'realm="{realm}"', f'nonce="{nonce}"', f'uri="{uri}"']
    qops = [q.strip() for q in params.get("qop", "").split(",") if q.strip()]
    if "auth" in qops:
        cnonce, nc = uuid.uuid4().hex[:16], "00000001"
        response = md5(f"{ha1}:{nonce}:{nc}:{cnonce}:auth:{ha2}")
        fields += [f'response="{response}"', "algorithm=MD5", "qop=auth", f"nc={nc}", f'cnonce="{cnonce}"']
    else:
        fields += [f'response="{md5(f"{ha1}:{nonce}:{ha2}")}"', "algorithm=MD5"]
    if "opaque" in params:
        fields.append(f'opaque="{params["opaque"]}"')
    return "Digest " + ", ".join(fields)


def _branch() -> str:
    return "z9hG4bK" + uuid.uuid4().hex[:20]


def _body(raw: bytes) -> str:
    return raw.split(b"\r\n\r\n", 1)[1].decode("utf-8", "replace") if b"\r\n\r\n" in raw else ""


def sdp_media(raw: bytes) -> tuple[str, ...]:
    """What a peer's SDP says about its media: connection, media and direction lines (not o=, which a refresh
    may or may not bump); empty without SDP."""
    lines = [line.strip() for line in _body(raw).splitlines()]
    return tuple(line for line in lines if line[:2] in ("c=", "m=")
                 or line in ("a=sendrecv", "a=sendonly", "a=recvonly", "a=inactive"))


# --- D8 and the telephone-event crash -----------------------------------------------------------------------


class FixedRTPClient(RTP.RTPClient):
    def __init__(self, *args: Any, bound: socket.socket | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.bound = bound  # the call's RTP socket, bound when it was dialled (1.6.8 binds only now)

    def start(self) -> None:
        if self.bound is None:
            super().start()
            return
        self.sin = self.sout = self.bound
        self.bound = None
        self.sin.setblocking(False)
        for target, name in ((self.recv, "RTP Receiver"), (self.trans, "RTP Transmitter")):
            timer = threading.Timer(0, target)
            timer.name = name
            timer.start()

    def encode_packet(self, payload: bytes) -> bytes:
        if self.preference == RTP.PayloadType.PCMA:  # D8: 1.6.8 calls encode_pcmu here
            return self.encode_pcma(payload)
        return super().encode_packet(payload)

    def parse_telephone_event(self, packet: RTP.RTPMessage) -> None:
        if not packet.payload or packet.payload[0] > 15:  # flash (16) and beyond: IndexError in 1.6.8
            return
        super().parse_telephone_event(packet)


# --- a call we place ----------------------------------------------------------------------------------------


class DialledCall(pv.VoIPCall):
    """An outgoing call and its dialog state; every change happens under `lock` (D7)."""

    def __init__(self, phone: DiallerPhone, number: str, port: int, listener: Listener) -> None:
        sip = self.dsip = phone.sip
        self.number, self.listener, self.lock = number, listener, threading.RLock()
        self.request_uri = f"sip:{number}@{sip.domain}"
        self.sip_call_id = f"{uuid.uuid4().hex}@{sip.myIP}"
        self.from_tag, self.to_tag = sip.gen_tag(), ""
        self.cseq, self.branch, self.authorization = 1, _branch(), ""
        self.auth_tries = 0
        self.remote_target, self.route_set = "", list[str]()
        self.provisional = threading.Event()  # a 1xx (or final) arrived for the current INVITE
        self.final = threading.Event()  # the INVITE transaction has its final response
        self.status = 0  # the final status (200, 486 ...); 408 when nobody answered at all
        self.cancelling = False
        self._released = False
        self.rtp_socket: socket.socket | None = None  # bound to `port` by DiallerPhone.dial, used once answered
        self.remote_media: tuple[str, ...] = ()  # the answer's media, to tell a session refresh from a change
        self.local_sdp, self.sdp_version = "", 1
        self._refresh_acked: dict[int, threading.Event] = {}
        medias = {port: {0: RTP.PayloadType.PCMU, 8: RTP.PayloadType.PCMA, 101: RTP.PayloadType.EVENT}}
        request = SIP.SIPMessage(self._invite_bytes(sip, port))
        super().__init__(phone, pv.CallState.DIALING, request, int(time.time()) % 100000, sip.myIP,
                         ms=medias,  # type: ignore[arg-type]  # 1.6.8's hint is wrong: port -> codecs
                         sendmode="sendrecv")
        self.call_id = self.sip_call_id
        self.invite_data = self._invite_bytes(sip, port)

    def __del__(self) -> None:  # 1.6.8 releases the ports here (again); we release them once, explicitly
        pass

    # -- messages

    def _invite_bytes(self, sip: DiallerSIP, port: int) -> bytes:
        body = self._sdp(sip, port, ["0", "8", "101"], self.cseq)
        self.local_sdp, self.sdp_version = body, self.cseq
        head = [f"INVITE {self.request_uri} SIP/2.0",
                f"Via: SIP/2.0/UDP {sip.myIP}:{sip.myPort};branch={self.branch};rport",
                "Max-Forwards: 70", f"From: {sip.from_header()};tag={self.from_tag}",
                f"To: <{self.request_uri}>", f"Call-ID: {self.sip_call_id}", f"CSeq: {self.cseq} INVITE",
                f"Contact: <sip:{sip.username}@{sip.myIP}:{sip.myPort}>", f"Allow: {ALLOW}",
                f"User-Agent: hotline-dialler (pyVoIP {SIP.pyVoIP.__version__})"]
        if self.authorization:
            head.append(self.authorization)
        head += ["Content-Type: application/sdp", f"Content-Length: {len(body.encode())}"]
        return ("\r\n".join(head) + "\r\n\r\n" + body).encode()

    @staticmethod
    def _sdp(sip: DiallerSIP, port: int, formats: list[str], version: int) -> str:
        names = {"0": "a=rtpmap:0 PCMU/8000\r\n", "8": "a=rtpmap:8 PCMA/8000\r\n",
                 "101": "a=rtpmap:101 telephone-event/8000\r\na=fmtp:101 0-15\r\n"}
        return (f"v=0\r\no=pyVoIP 1 {version} IN IP4 {sip.myIP}\r\ns=hotline\r\n"
                f"c=IN IP4 {sip.myIP}\r\nt=0 0\r\nm=audio {port} RTP/AVP {' '.join(formats)}\r\n"
                + "".join(names[f] for f in formats) + "a=ptime:20\r\na=sendrecv\r\n")

    def refresh(self, request: SIP.SIPMessage) -> bytes | None:
        """A re-INVITE offering the media of the call's answer again (a session refresh): our 200 with our SDP
        for the formats offered, sent again until its ACK. None for anything else (the caller answers 488)."""
        sip = self.dsip
        with self.lock:
            if self.state != pv.CallState.ANSWERED or not self.remote_media \
                    or sdp_media(request.raw) != self.remote_media:
                return None
            offered = next(line for line in self.remote_media if line.startswith("m=")).split()[3:]
            formats = [f for f in offered if f in ("0", "8", "101")]
            port = next(iter(self.assignedPorts))
            body = self._sdp(sip, port, formats, self.sdp_version)
            if body != self.local_sdp:  # RFC 3264 8: a changed SDP has a higher version
                self.sdp_version += 1
                body = self.local_sdp = self._sdp(sip, port, formats, self.sdp_version)
            cseq = int(request.headers["CSeq"]["check"])
            acked = self._refresh_acked.setdefault(cseq, threading.Event())
        head = sip._reply(request.raw, 200, "OK").decode().split("\r\n")
        head = [h for h in head if h and not h.startswith("Content-Length")]
        head += [f"Contact: <sip:{sip.username}@{sip.myIP}:{sip.myPort}>", "Content-Type: application/sdp",
                 f"Content-Length: {len(body.encode())}"]
        data = ("\r\n".join(head) + "\r\n\r\n" + body).encode()
        threading.Thread(target=self._send_until_acked, args=(data, acked), name="dialler re-INVITE 200",
                         daemon=True).start()
        return data

    def _send_until_acked(self, data: bytes, acked: threading.Event) -> None:
        """RFC 3261 13.3.1.4: the 2xx to an INVITE is sent again (T1 doubling to T2) until its ACK, for 64*T1."""
        started, interval = time.monotonic(), T1
        while not acked.is_set() and self.state == pv.CallState.ANSWERED and time.monotonic() - started < 64 * T1:
            self.dsip.send(data)
            acked.wait(interval)
            interval = min(interval * 2, T2)

    def acked(self, cseq: int) -> None:
        event = self._refresh_acked.get(cseq)
        if event is not None:
            event.set()

    def _ack_non_2xx(self, response: SIP.SIPMessage) -> bytes:
        """RFC 3261 17.1.1.3: same branch and Request-URI as the INVITE, the response's To."""
        sip = self.dsip
        to = header_values(response.raw, "To", split=False)[0]
        return ("\r\n".join([
            f"ACK {self.request_uri} SIP/2.0",
            f"Via: SIP/2.0/UDP {sip.myIP}:{sip.myPort};branch={self.branch};rport", "Max-Forwards: 70",
            f"From: {sip.from_header()};tag={self.from_tag}", f"To: {to}", f"Call-ID: {self.sip_call_id}",
            f"CSeq: {self.cseq} ACK", "Content-Length: 0"]) + "\r\n\r\n").encode()

    def _in_dialog(self, method: str, cseq: int) -> bytes:
        """ACK to a 2xx (D1) and BYE: to the remote target, through the route set, with the 200's To-tag."""
        sip = self.dsip
        head = [f"{method} {self.remote_target or self.request_uri} SIP/2.0",
                f"Via: SIP/2.0/UDP {sip.myIP}:{sip.myPort};branch={_branch()};rport", "Max-Forwards: 70"]
        head += [f"Route: <{route}>" for route in self.route_set]
        head += [f"From: {sip.from_header()};tag={self.from_tag}", f"To: <{self.request_uri}>;tag={self.to_tag}",
                 f"Call-ID: {self.sip_call_id}", f"CSeq: {cseq} {method}", "Content-Length: 0"]
        return ("\r\n".join(head) + "\r\n\r\n").encode()

    def _cancel(self) -> bytes:
        sip = self.dsip
        return ("\r\n".join([
            f"CANCEL {self.request_uri} SIP/2.0",
            f"Via: SIP/2.0/UDP {sip.myIP}:{sip.myPort};branch={self.branch};rport", "Max-Forwards: 70",
            f"From: {sip.from_header()};tag={self.from_tag}", f"To: <{self.request_uri}>",
            f"Call-ID: {self.sip_call_id}", f"CSeq: {self.cseq} CANCEL", "Content-Length: 0"]) + "\r\n\r\n").encode()

    # -- media (D8 through FixedRTPClient)

    def create_rtp_clients(self, codecs: dict[int, RTP.PayloadType], ip: str, port: int,
                           request: SIP.SIPMessage, baseport: int) -> None:
        for ii in range(len(request.body["c"])):
            bound, self.rtp_socket = self.rtp_socket, None
            self.RTPClients.append(FixedRTPClient(codecs, ip, port, request.body["c"][ii]["address"], baseport + ii,
                                                  RTP.TransmitType.SENDRECV, dtmf=self.dtmf_callback, bound=bound))

    def dtmf_callback(self, code: str) -> None:
        self.listener("digit", code)

    def flush_audio(self) -> None:
        """Drop what is queued to play (barge-in): skip to the end of the send buffer."""
        for client in self.RTPClients:
            manager = client.pmout
            with manager.bufferLock:
                manager.buffer.seek(0, 2)

    # -- the INVITE transaction (D2, D4, D9)

    def send_invite(self) -> None:
        """Send the INVITE and retransmit it (Timer A) until something answers; runs in a worker thread."""
        sip = self.dsip
        started, interval = time.monotonic(), T1
        while not self.provisional.wait(interval):
            with self.lock:
                if self.state != pv.CallState.DIALING:
                    return
                sip.send(self.invite_data)
            if time.monotonic() - started > INVITE_SECONDS:
                self._end(408)
                return
            interval = min(interval * 2, T2)

    def on_invite_response(self, response: SIP.SIPMessage) -> None:
        """Called by the receive thread with every response whose CSeq method is INVITE."""
        status = int(response.status)
        sip = self.dsip
        with self.lock:
            if int(response.headers["CSeq"]["check"]) != self.cseq:
                if 200 <= status < 300:  # a late 200 to a challenged INVITE: acknowledge it all the same
                    sip.send(self._in_dialog_ack_for(response))
                return
            self.provisional.set()
            if status < 200:
                if status in (180, 183):
                    self.listener("ringing", status)
                return
            if status < 300:
                self._answered(response)
                return
            sip.send(self._ack_non_2xx(response))
            if status in (401, 407) and self.auth_tries < 2 and self.state == pv.CallState.DIALING \
                    and not self.cancelling:
                self._authenticate(response, status)
                return
            self._end(status)

    def _in_dialog_ack_for(self, response: SIP.SIPMessage) -> bytes:
        self.to_tag = self.to_tag or _tag_of(header_values(response.raw, "To", split=False)[0])
        return self._in_dialog("ACK", int(response.headers["CSeq"]["check"]))

    def _authenticate(self, response: SIP.SIPMessage, status: int) -> None:
        """D4/D5: the same INVITE again, with credentials for the challenge, a new CSeq and branch."""
        sip = self.dsip
        name = "Proxy-Authenticate" if status == 407 else "WWW-Authenticate"
        answer = "Proxy-Authorization" if status == 407 else "Authorization"
        challenges = header_values(response.raw, name, split=False)
        if not challenges:
            self._end(status)
            return
        self.auth_tries += 1
        credentials = digest(challenges[0], username=sip.username, password=sip.password, method="INVITE",
                             uri=self.request_uri)
        self.authorization = f"{answer}: {credentials}"
        self.cseq, self.branch = self.cseq + 1, _branch()
        self.provisional.clear()
        port = next(iter(self.assignedPorts))
        self.invite_data = self._invite_bytes(sip, port)
        sip.send(self.invite_data)
        threading.Thread(target=self.send_invite, name=f"dialler INVITE {self.number}", daemon=True).start()

    def _answered(self, response: SIP.SIPMessage) -> None:
        """D1: remember the 200's To-tag, Contact and Record-Route; ACK every 200 (retransmissions too)."""
        sip = self.dsip
        if self.state == pv.CallState.DIALING:
            self.to_tag = _tag_of(header_values(response.raw, "To", split=False)[0])
            contacts = header_values(response.raw, "Contact")
            self.remote_target = _uri_of(contacts[0]) if contacts else self.request_uri
            self.route_set = [_uri_of(r) for r in reversed(header_values(response.raw, "Record-Route"))]
            try:
                self.answered(response)  # pyVoIP: RTP clients from the answer's SDP, state ANSWERED
            except Exception as exc:  # an answer we cannot use: end the call properly
                log.warning("call %s: unusable answer: %s", mask(self.number), exc)
                self.state = pv.CallState.ANSWERED
                sip.send(self._in_dialog("ACK", self.cseq))
                self._bye()
                self._end(488)
                return
            self.status = 200
            self.remote_media = sdp_media(response.raw)
            self.final.set()
            sip.send(self._in_dialog("ACK", self.cseq))
            if self.cancelling:  # the 200 crossed our CANCEL: the call is over for us
                self._bye()
                self._end(487)
                return
            self.listener("answered", 200)
            return
        sip.send(self._in_dialog("ACK", self.cseq))  # a retransmitted 200: ACK it again

    def _end(self, status: int) -> None:
        with self.lock:
            if self.state == pv.CallState.ENDED:
                return
            for client in self.RTPClients:
                client.stop()
            self.state = pv.CallState.ENDED
            self.status = self.status if self.status == 200 else status
            self.final.set()
            self._release()
        self.listener("ended", status)

    def _release(self) -> None:
        if self._released:
            return
        self._released = True
        self.phone.calls.pop(self.sip_call_id, None)
        if self.rtp_socket is not None:  # never answered: its reserved RTP socket was not used
            self.rtp_socket.close()
            self.rtp_socket = None
        with self.phone.portsLock:
            for port in self.assignedPorts:
                if port in self.phone.assignedPorts:
                    self.phone.assignedPorts.remove(port)

    # -- ending (D3, D7)

    def cancel(self, wait: float = 8.0) -> None:
        """D3: CANCEL a ringing call (after a provisional response), then wait for the INVITE's final response."""
        sip = self.dsip
        with self.lock:
            if self.state != pv.CallState.DIALING or self.cancelling:
                return
            self.cancelling = True
        if not self.provisional.wait(wait):  # RFC 3261 9.1: no CANCEL before a provisional
            self._end(408)
            return
        with self.lock:
            if self.state != pv.CallState.DIALING:
                return
            data = self._cancel()
        sip.transaction(data, self.sip_call_id, self.cseq, "CANCEL")
        if not self.final.wait(wait):
            self._end(487)

    def _bye(self) -> None:
        data = self._in_dialog("BYE", self.cseq + 1)
        threading.Thread(target=self.dsip.transaction, args=(data, self.sip_call_id, self.cseq + 1, "BYE"),
                         name="dialler BYE", daemon=True).start()

    def hangup(self) -> None:
        """Ends the call from our side whatever its state; after the peer's BYE it does nothing (D7)."""
        with self.lock:
            state = self.state
            if state == pv.CallState.ANSWERED:
                for client in self.RTPClients:
                    client.stop()
                self._bye()
        if state == pv.CallState.DIALING:
            self.cancel()
        elif state == pv.CallState.ANSWERED:
            self._end(200)

    def bye(self) -> None:
        """The peer's BYE (called by the receive thread)."""
        self._end(200)


# --- the SIP client: registration that never gives up (D6), requests that never block receiving (D9) -------


class DiallerSIP(SIP.SIPClient):
    def __init__(self, phone: DiallerPhone, *, server: str, port: int, username: str, password: str,
                 domain: str, caller_id: str, my_ip: str, my_port: int, expires: int) -> None:
        super().__init__(server, port, username, password, phone=phone, myIP=my_ip, myPort=my_port,
                         callCallback=None, fatalCallback=None)
        self.phone: DiallerPhone = phone
        self.domain, self.caller_id, self.expires = domain or f"{server}:{port}", caller_id or username, expires
        self.registered = False
        self.last_error = ""
        self.register_attempts = 0
        self.registered_at = 0.0
        self.next_register_at = 0.0
        self._waiters: dict[tuple[str, int, str], tuple[threading.Event, list[SIP.SIPMessage]]] = {}
        self._waiters_lock = threading.Lock()
        self._stopping = threading.Event()
        self._reg_call_id = f"{uuid.uuid4().hex}@{my_ip}"
        self._reg_tag = self.gen_tag()
        self._reg_cseq = 0

    def from_header(self) -> str:
        return f'"{self.caller_id}" <sip:{self.username}@{self.domain}>'

    def send(self, data: bytes) -> None:
        try:
            self.out.sendto(data, (self.server, self.port))
        except OSError as exc:
            log.warning("dialler: could not send to %s:%d: %s", self.server, self.port, exc)

    # -- life

    def start(self) -> None:
        if self.NSD:
            raise RuntimeError("the dialler's SIP client runs already")
        self.s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.s.bind((self.myIP, self.myPort))
        self.out = self.s
        self.NSD = True
        self._stopping.clear()
        threading.Thread(target=self.recv_loop, name="dialler SIP receive", daemon=True).start()
        threading.Thread(target=self._register_loop, name="dialler SIP register", daemon=True).start()

    def stop(self) -> None:
        if not self.NSD:
            return
        self._stopping.set()
        if self.registered:
            self._register_once(expires=0, timeout=1.0)
        self.registered = False
        self.NSD = False
        time.sleep(0.05)
        self._close_sockets()

    # -- receiving (every response through here: D9)

    def recv_loop(self) -> None:
        """select() rather than 1.6.8's 10 ms polling; a socket closed at stop ends the loop quietly."""
        while self.NSD:
            try:
                ready, _, _ = select.select([self.s], [], [], 0.2)
                if ready:
                    self.recv()
            except (OSError, ValueError):
                if not self.NSD:
                    return
                time.sleep(0.05)

    def recv(self) -> None:
        raw = self.s.recv(8192)  # BlockingIOError goes back to recv_loop
        if raw.strip() == b"":
            return  # keep-alive
        if raw.split(b" ", 1)[0] in (b"OPTIONS", b"NOTIFY", b"INFO", b"UPDATE", b"MESSAGE"):
            self.send(self._reply(raw, 200, "OK"))  # 1.6.8 drops these (a PBX then marks us unreachable)
            return
        try:
            message = SIP.SIPMessage(raw)
        except Exception as exc:
            log.debug("dialler: unparsable datagram: %s", exc)
            return
        try:
            self.parse_message(message)
        except Exception:
            log.exception("dialler: failed handling a %s", raw.split(b" ", 1)[0][:16])  # not its numbers

    def parse_message(self, message: SIP.SIPMessage) -> None:
        call_id = message.headers.get("Call-ID", "")
        if message.type == SIP.SIPMessageType.RESPONSE:
            cseq, method = int(message.headers["CSeq"]["check"]), message.headers["CSeq"]["method"]
            if method == "INVITE":
                call = self.phone.calls.get(call_id)
                if isinstance(call, DialledCall):
                    call.on_invite_response(message)
                return
            with self._waiters_lock:
                waiter = self._waiters.get((call_id, cseq, method))
            if waiter is not None and int(message.status) >= 200:
                waiter[1].append(message)
                waiter[0].set()
            return
        call = self.phone.calls.get(call_id)
        if message.method == "BYE":
            self.send(self._reply(message.raw, 200 if call else 481, "OK" if call else "No Such Call"))
            if isinstance(call, DialledCall):
                call.bye()
        elif message.method == "INVITE":
            # A new call to this extension (the IVR answers residents, not the dialler): 486. A session refresh of a
            # call: 200 (DialledCall.refresh). Any other re-INVITE is declined politely; the call keeps its media.
            if isinstance(call, DialledCall) and call.refresh(message) is not None:
                return
            self.send(self._reply(message.raw, 486 if call is None else 488, "Busy Here" if call is None
                                  else "Not Acceptable Here"))
        elif message.method == "ACK":
            if isinstance(call, DialledCall):
                call.acked(int(message.headers["CSeq"]["check"]))
        elif message.method == "CANCEL":
            self.send(self._reply(message.raw, 481, "Call/Transaction Does Not Exist"))

    def _reply(self, raw: bytes, status: int, reason: str) -> bytes:
        """A response built from the request's own header lines (1.6.8 puts a fresh tag in To)."""
        keep = ("via", "from", "to", "call-id", "cseq")
        lines = [f"SIP/2.0 {status} {reason}"]
        for line in _head_lines(raw)[1:]:
            key = line.partition(":")[0].strip().lower()
            if key in keep:
                if key == "to" and not _tag_of(line.partition(":")[2]):
                    line += f";tag={self.gen_tag()}"
                lines.append(line)
        lines += [f"Allow: {ALLOW}", "Content-Length: 0"]
        return ("\r\n".join(lines) + "\r\n\r\n").encode()

    def transaction(self, data: bytes, call_id: str, cseq: int, method: str,
                    timeout: float = TRANSACTION_SECONDS) -> SIP.SIPMessage | None:
        """A non-INVITE request: sent, retransmitted (T1 doubling to T2) until its final response or timeout."""
        key = (call_id, cseq, method)
        event, box = threading.Event(), list[SIP.SIPMessage]()
        with self._waiters_lock:
            self._waiters[key] = (event, box)
        try:
            started, interval = time.monotonic(), T1
            while True:
                self.send(data)
                if event.wait(interval):
                    return box[0]
                if time.monotonic() - started >= timeout or not self.NSD:
                    return None
                interval = min(interval * 2, T2)
        finally:
            with self._waiters_lock:
                self._waiters.pop(key, None)

    # -- registration (D5, D6)

    def _register_request(self, expires: int, authorization: str = "") -> tuple[bytes, int]:
        self._reg_cseq += 1
        uri = f"sip:{self.domain}"
        head = [f"REGISTER {uri} SIP/2.0",
                f"Via: SIP/2.0/UDP {self.myIP}:{self.myPort};branch={_branch()};rport", "Max-Forwards: 70",
                f"From: <sip:{self.username}@{self.domain}>;tag={self._reg_tag}",
                f"To: <sip:{self.username}@{self.domain}>", f"Call-ID: {self._reg_call_id}",
                f"CSeq: {self._reg_cseq} REGISTER", f"Contact: <sip:{self.username}@{self.myIP}:{self.myPort}>",
                f"Expires: {expires}", f"Allow: {ALLOW}"]
        if authorization:
            head.append(authorization)
        head.append("Content-Length: 0")
        return ("\r\n".join(head) + "\r\n\r\n").encode(), self._reg_cseq

    def _register_once(self, expires: int, timeout: float = TRANSACTION_SECONDS) -> tuple[bool, str, int]:
        """One REGISTER (answering one challenge): (registered, error, granted expiry)."""
        data, cseq = self._register_request(expires)
        response = self.transaction(data, self._reg_call_id, cseq, "REGISTER", timeout)
        for _ in range(2):
            if response is None:
                return False, f"no answer from the registrar {self.server}:{self.port}", 0
            status = int(response.status)
            if status not in (401, 407):
                break
            name = "Proxy-Authenticate" if status == 407 else "WWW-Authenticate"
            answer = "Proxy-Authorization" if status == 407 else "Authorization"
            challenge = header_values(response.raw, name, split=False)
            if not challenge:
                break
            credentials = digest(challenge[0], username=self.username, password=self.password, method="REGISTER",
                                 uri=f"sip:{self.domain}")
            data, cseq = self._register_request(expires, f"{answer}: {credentials}")
            response = self.transaction(data, self._reg_call_id, cseq, "REGISTER", timeout)
        assert response is not None
        status = int(response.status)
        if 200 <= status < 300:
            granted = expires
            match = re.search(r"expires=(\d+)", " ".join(header_values(response.raw, "Contact")))
            if match:
                granted = int(match.group(1))
            elif header_values(response.raw, "Expires"):
                granted = int(header_values(response.raw, "Expires")[0])
            return True, "", granted
        return False, f"{status} {response.heading.decode(errors='replace').split(' ', 2)[-1]}", 0

    def _register_loop(self) -> None:
        """D6: register, refresh before expiry, and after a failure try again after 1, 2, 4 ... 60 s, forever."""
        backoff = 1.0
        while self.NSD and not self._stopping.is_set():
            try:
                ok, error, granted = self._register_once(self.expires)
            except Exception as exc:  # a bug must not end registration for good
                log.exception("dialler: registration failed")
                ok, error, granted = False, f"{type(exc).__name__}: {exc}", 0
            self.register_attempts += 1
            if ok:
                self.registered, self.last_error, backoff = True, "", 1.0
                self.registered_at = time.time()
                wait = max(granted * 0.8, 5.0) if granted else 60.0
                self.phone._status = PhoneStatus.REGISTERED
            else:
                if self.registered or self.register_attempts == 1:
                    log.warning("dialler: registration with %s:%d failed: %s", self.server, self.port, error)
                self.registered, self.last_error = False, error
                self.phone._status = PhoneStatus.REGISTERING
                wait, backoff = backoff, min(backoff * 2, 60.0)
            self.next_register_at = time.time() + wait
            self._stopping.wait(wait)


class DiallerPhone(pv.VoIPPhone):
    """pyVoIP's phone as an extension that only dials out."""

    def __init__(self, *, server: str, port: int, username: str, password: str, domain: str, caller_id: str,
                 my_ip: str, sip_port: int, rtp_low: int, rtp_high: int, expires: int = 300) -> None:
        super().__init__(server, port, username, password, myIP=my_ip, callCallback=None, sipPort=sip_port,
                         rtpPortLow=rtp_low, rtpPortHigh=rtp_high)
        self.sip: DiallerSIP = DiallerSIP(self, server=server, port=port, username=username, password=password,
                                          domain=domain, caller_id=caller_id, my_ip=my_ip, my_port=sip_port,
                                          expires=expires)

    def start(self) -> None:
        self._status = PhoneStatus.REGISTERING
        self.sip.start()
        self.NSD = True

    def stop(self, failed: bool = False) -> None:
        for call in list(self.calls.values()):
            call.hangup()
        self.sip.stop()
        self.NSD = False
        self._status = PhoneStatus.INACTIVE

    def dial(self, number: str, listener: Listener) -> DialledCall:
        """Create the call and its INVITE; `DialledCall.send_invite` (in a worker thread) sends it.

        The call's RTP port is bound now, before the INVITE offers it: a port of the range that another
        program holds is skipped (1.6.8 took the first one not ours and failed the answered call on it)."""
        with self.portsLock:
            port, sock = self._bind_rtp_port()
            self.assignedPorts.append(port)
        try:
            call = DialledCall(self, number, port, listener)
        except BaseException:
            sock.close()
            with self.portsLock:
                self.assignedPorts.remove(port)
            raise
        call.rtp_socket = sock
        self.calls[call.sip_call_id] = call
        return call

    def _bind_rtp_port(self) -> tuple[int, socket.socket]:
        """The first even port of the range neither ours nor taken by another program, bound to our address."""
        taken = 0
        for port in range(self.rtpPortLow, self.rtpPortHigh + 1, 2):
            if port in self.assignedPorts:
                continue
            sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            try:
                sock.bind((self.sip.myIP, port))
            except OSError:
                sock.close()
                taken += 1
                continue
            if taken:
                log.info("dialler: %d RTP port(s) of the range held by other programs; using %d", taken, port)
            return port, sock
        raise pv.NoPortsAvailableError(f"no RTP port left for another call ({taken} held by other programs)")
